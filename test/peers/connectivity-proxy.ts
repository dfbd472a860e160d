// A stand-in for SAP's connectivity proxy with the Cloud Connector behind it: an HTTP proxy port and a
// SOCKS5 port (method 0x80 only) that accept a JWT from the token service (signature checked against
// its JWKS, client id against the configured ones), pick the Cloud Connector by location id, apply its
// access control and forward to the internal host. It binds identity per client connection, as the
// Cloud Connector does: a connection that carries requests of two identities is refused and counted
// as a violation. Counters: stats() in-process, GET /_peer/stats on the admin port.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import {
  type ConnectivityProxyOptions,
  type LocationConfig,
  resolveLocation,
  resolveSystem,
} from './connectivity-config.js';
import {
  backendHeaders,
  bearerToken,
  checkProxyRequest,
  HEADER_LOCATION,
  HEADER_TECHNICAL_USER,
  HEADER_USER,
} from './connectivity-http.js';
import {
  ATYP_IPV6,
  buildReply,
  CMD_CONNECT,
  JWT_AUTH_VERSION,
  METHOD_JWT,
  METHOD_NONE_ACCEPTABLE,
  parseConnectRequest,
  parseGreeting,
  parseJwtAuthFrame,
  replyName,
  SOCKS_REPLY,
  SOCKS_VERSION,
} from './connectivity-socks5.js';
import { clientIdOf, type JwtClaims, JwtError, KeySet } from './jwt.js';

export type { ConnectivityProxyOptions, LocationConfig, SystemMapping } from './connectivity-config.js';

export interface ConnectivityProxyStats {
  /** HTTP requests received on the proxy port */
  requests: number;
  /** of those, forwarded to a backend */
  forwarded: number;
  byStatus: Record<string, number>;
  /** forwarded HTTP requests and successful SOCKS5 CONNECTs per location id ('' = default) */
  byLocation: Record<string, number>;
  /** forwarded HTTP requests per propagated principal ('' = none) */
  byPrincipal: Record<string, number>;
  /** client connections that carried requests of more than one identity */
  violations: number;
  /** SOCKS5 connections accepted */
  socksSessions: number;
  /** SOCKS5 CONNECT replies by SAP name (SUCCESS, FORBIDDEN, ...) */
  socksReplies: Record<string, number>;
}

export interface ConnectivityProxy {
  host: string;
  httpPort: number;
  socksPort: number;
  /** set when adminPort was configured */
  adminPort?: number;
  stats(): ConnectivityProxyStats;
  /** connects or disconnects the Cloud Connector of a location (503 / 0x03 while disconnected) */
  setConnected(locationId: string, connected: boolean): void;
  stop(): Promise<void>;
}

const BACKEND_CONNECT_TIMEOUT_MS = 5000;

export async function startConnectivityProxy(options: ConnectivityProxyOptions): Promise<ConnectivityProxy> {
  const host = options.host ?? '127.0.0.1';
  const keys = new KeySet(options.jwksUrl ? { url: options.jwksUrl } : { keys: options.keys ?? [] });
  const locations: Record<string, LocationConfig> = structuredClone(options.locations);
  const accepted = new Set(options.clientIds);
  const stats: ConnectivityProxyStats = {
    requests: 0,
    forwarded: 0,
    byStatus: {},
    byLocation: {},
    byPrincipal: {},
    violations: 0,
    socksSessions: 0,
    socksReplies: {},
  };
  const bump = (map: Record<string, number>, key: string): void => void (map[key] = (map[key] ?? 0) + 1);

  /** The proxy token's claims, or why it is not accepted. */
  const authenticate = async (token: string | undefined): Promise<JwtClaims | string> => {
    if (!token) return 'no Bearer token';
    try {
      const claims = await keys.verify(token);
      const clientId = clientIdOf(claims);
      if (!clientId || !accepted.has(clientId))
        return `token was issued to client ${JSON.stringify(clientId ?? null)}, which is not a connectivity service client`;
      return claims;
    } catch (error) {
      if (error instanceof JwtError) return error.message;
      return `token service keys unavailable: ${(error as Error).message}`;
    }
  };

  const httpServer = http.createServer();
  const identities = new WeakMap<net.Socket, string>();
  const agents = new WeakMap<net.Socket, http.Agent>();
  httpServer.on('connection', (socket: net.Socket) => {
    socket.once('close', () => agents.get(socket)?.destroy());
  });
  httpServer.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    socket.on('error', () => socket.destroy());
    stats.requests++;
    bump(stats.byStatus, '405');
    const check = checkProxyRequest('CONNECT', req.url ?? '');
    const body = check.ok ? '' : `${check.message}\n`;
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  httpServer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    stats.requests++;
    void handleHttp(req, res).catch((error: Error) => reply(res, 500, `stand-in failure: ${error.message}`));
  });

  const reply = (
    res: http.ServerResponse,
    status: number,
    message: string,
    headers: http.OutgoingHttpHeaders = {},
  ) => {
    bump(stats.byStatus, String(status));
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(`${message}\n`);
  };

  async function handleHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const check = checkProxyRequest(req.method ?? 'GET', req.url ?? '');
    if (!check.ok) return reply(res, check.status, check.message);
    const claims = await authenticate(bearerToken(req.headers['proxy-authorization']));
    if (typeof claims === 'string')
      return reply(res, 407, `Proxy-Authorization rejected: ${claims}`, {
        'proxy-authenticate': 'Bearer realm="connectivity-proxy"',
      });
    const locationId = String(req.headers[HEADER_LOCATION] ?? '');
    const found = resolveLocation(locations, locationId);
    if (!found.ok)
      return reply(
        res,
        503,
        found.reason === 'unknown'
          ? `no Cloud Connector is connected for location id ${JSON.stringify(locationId)}`
          : `the Cloud Connector of location id ${JSON.stringify(locationId)} is disconnected`,
      );
    const tenant = typeof claims.zid === 'string' ? claims.zid : undefined;
    const principal = await propagatedPrincipal(req, tenant);
    if (typeof principal === 'string') return reply(res, 401, principal);

    const socket = req.socket;
    const identity = `${tenant ?? ''}|${principal?.type ?? 'none'}:${principal?.name ?? ''}`;
    const bound = identities.get(socket);
    if (bound === undefined) identities.set(socket, identity);
    else if (bound !== identity) {
      stats.violations++;
      res.setHeader('connection', 'close');
      reply(
        res,
        403,
        'identity binding violation: this connection already carried requests of another identity',
      );
      return;
    }

    const system = resolveSystem(found.location, check.host, check.port, 'http', check.path);
    if (!system.ok)
      return reply(
        res,
        403,
        system.reason === 'path-denied'
          ? `access denied: path ${check.path.split('?')[0]} of ${check.host}:${check.port} is not exposed by the Cloud Connector`
          : `access denied: ${check.host}:${check.port} is not an HTTP system in the Cloud Connector's access control`,
      );
    let agent = agents.get(socket);
    if (!agent) agents.set(socket, (agent = new http.Agent({ keepAlive: true, maxSockets: 1 })));
    const internal = { host: system.system.internalHost, port: system.system.internalPort };
    await new Promise<void>((resolve) => {
      const upstream = http.request({
        host: internal.host,
        port: internal.port,
        method: req.method,
        path: check.path,
        headers: backendHeaders(
          req.headers,
          internal,
          principal && { ...principal, ...(tenant ? { tenant } : {}) },
        ),
        agent,
        timeout: BACKEND_CONNECT_TIMEOUT_MS,
      });
      upstream.on('response', (up) => {
        stats.forwarded++;
        bump(stats.byLocation, locationId);
        bump(stats.byPrincipal, principal?.name ?? '');
        bump(stats.byStatus, String(up.statusCode));
        const headers = { ...up.headers };
        delete headers.connection;
        delete headers['keep-alive'];
        res.writeHead(up.statusCode ?? 502, headers);
        up.pipe(res);
        up.on('end', resolve);
        up.on('error', () => {
          res.destroy();
          resolve();
        });
      });
      upstream.on('timeout', () => upstream.destroy(new Error('backend timed out')));
      upstream.on('error', (error) => {
        reply(
          res,
          502,
          `the Cloud Connector could not reach the backend: ${(error as NodeJS.ErrnoException).code ?? error.message}`,
        );
        resolve();
      });
      req.pipe(upstream);
    });
  }

  /** The principal to propagate, undefined for none, or why the header is not accepted. */
  async function propagatedPrincipal(
    req: http.IncomingMessage,
    tenant: string | undefined,
  ): Promise<{ name: string; type: 'user' | 'technical' } | undefined | string> {
    const user = req.headers[HEADER_USER];
    const technical = req.headers[HEADER_TECHNICAL_USER];
    if (user !== undefined && technical !== undefined)
      return 'SAP-Connectivity-Authentication and SAP-Connectivity-Technical-Authentication are mutually exclusive';
    const [header, value, type] =
      user !== undefined
        ? (['SAP-Connectivity-Authentication', user, 'user'] as const)
        : technical !== undefined
          ? (['SAP-Connectivity-Technical-Authentication', technical, 'technical'] as const)
          : [];
    if (!header) return undefined;
    const token = bearerToken(value);
    if (!token) return `${header} must be "Bearer <JWT>"`;
    let claims: JwtClaims;
    try {
      claims = await keys.verify(token);
    } catch (error) {
      return `${header} rejected: ${(error as Error).message}`;
    }
    if (tenant !== undefined && claims.zid !== undefined && claims.zid !== tenant)
      return `${header} rejected: the token is of tenant ${String(claims.zid)}, the proxy token of ${tenant}`;
    const name = type === 'user' ? claims.user_name : (claims.user_name ?? clientIdOf(claims));
    if (typeof name !== 'string' || name === '')
      return `${header} rejected: the token has no ${type === 'user' ? 'user_name' : 'user_name or client id'}`;
    return { name, type };
  }

  const socksSockets = new Set<net.Socket>();
  const socksServer = net.createServer((socket) => {
    socksSockets.add(socket);
    socket.on('close', () => socksSockets.delete(socket));
    stats.socksSessions++;
    socksSession(socket);
  });

  function socksSession(socket: net.Socket): void {
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'auth' | 'request' | 'connecting' | 'piping' = 'greeting';
    let claims: JwtClaims | undefined;
    let authProblem: string | undefined;
    let locationId = '';
    socket.on('error', () => socket.destroy());
    socket.setTimeout(30_000, () => socket.destroy());
    const finish = (code: number): void => {
      bump(stats.socksReplies, replyName(code));
      socket.end(buildReply(code));
    };
    const step = async (): Promise<void> => {
      if (stage === 'greeting') {
        const g = parseGreeting(buf);
        if (g.kind === 'more') return;
        if (g.kind === 'error') return void socket.destroy();
        buf = buf.subarray(g.length);
        if (!g.methods.includes(METHOD_JWT))
          return void socket.end(Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]));
        socket.write(Buffer.from([SOCKS_VERSION, METHOD_JWT]));
        stage = 'auth';
      }
      if (stage === 'auth') {
        const a = parseJwtAuthFrame(buf);
        if (a.kind === 'more') return;
        if (a.kind === 'error') return void socket.destroy();
        buf = buf.subarray(a.length);
        stage = 'connecting'; // no parsing while the token is checked
        const result = await authenticate(a.jwt);
        if (typeof result === 'string') {
          if ((options.socksAuthFailure ?? 'subnegotiation') === 'subnegotiation')
            return void socket.end(Buffer.from([JWT_AUTH_VERSION, 0x01]));
          authProblem = result;
        } else claims = result;
        locationId = a.locationId;
        socket.write(Buffer.from([JWT_AUTH_VERSION, 0x00]));
        stage = 'request';
      }
      if (stage === 'request') {
        const r = parseConnectRequest(buf);
        if (r.kind === 'more') return;
        if (r.kind === 'error') {
          // An address type whose length is unknown: SAP's reply for unsupported address types.
          return /address type/.test(r.message)
            ? finish(SOCKS_REPLY.ADDRESS_UNSUPPORTED)
            : void socket.destroy();
        }
        buf = buf.subarray(r.length);
        stage = 'connecting';
        if (r.command !== CMD_CONNECT) return finish(SOCKS_REPLY.COMMAND_UNSUPPORTED);
        if (r.addressType === ATYP_IPV6) return finish(SOCKS_REPLY.ADDRESS_UNSUPPORTED);
        if (authProblem !== undefined || !claims) return finish(SOCKS_REPLY.CONNECTION_REFUSED);
        const found = resolveLocation(locations, locationId);
        if (!found.ok) return finish(SOCKS_REPLY.NETWORK_UNREACHABLE);
        const system = resolveSystem(found.location, r.host, r.port, 'tcp');
        if (!system.ok) return finish(SOCKS_REPLY.FORBIDDEN);
        const upstream = net.connect({ host: system.system.internalHost, port: system.system.internalPort });
        upstream.setTimeout(BACKEND_CONNECT_TIMEOUT_MS, () => upstream.destroy(new Error('timeout')));
        upstream.once('error', () => {
          if (stage === 'connecting') finish(SOCKS_REPLY.HOST_UNREACHABLE);
          else socket.destroy();
        });
        upstream.once('connect', () => {
          upstream.setTimeout(0);
          socket.setTimeout(0);
          stage = 'piping';
          bump(stats.socksReplies, 'SUCCESS');
          bump(stats.byLocation, locationId);
          const local = upstream.address() as AddressInfo;
          socket.write(buildReply(SOCKS_REPLY.SUCCESS, { address: local.address, port: local.port }));
          socket.off('data', onData); // from here on, pipe() moves the bytes
          if (buf.length > 0) upstream.write(buf);
          buf = Buffer.alloc(0);
          socket.pipe(upstream);
          upstream.pipe(socket);
          upstream.on('close', () => socket.destroy());
          socket.on('close', () => upstream.destroy());
        });
      }
    };
    const onData = (chunk: Buffer): void => {
      if (stage === 'piping') return;
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'connecting') return;
      void step().catch(() => socket.destroy());
    };
    socket.on('data', onData);
  }

  let adminServer: http.Server | undefined;
  if (options.adminPort !== undefined) {
    adminServer = http.createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (req.method === 'GET' && path === '/_peer/stats') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify(stats));
      }
      const m = /^\/_peer\/locations\/([^/]*)$/.exec(path);
      if (req.method === 'PUT' && m) {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          try {
            const { connected } = JSON.parse(body) as { connected?: unknown };
            if (typeof connected !== 'boolean') throw new Error('body must be {"connected": true|false}');
            setConnected(decodeURIComponent(m[1] ?? ''), connected);
            res.writeHead(204).end();
          } catch (error) {
            res.writeHead(400, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
          }
        });
        return;
      }
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('GET /_peer/stats, PUT /_peer/locations/<id>\n');
    });
  }

  function setConnected(locationId: string, connected: boolean): void {
    const location = locations[locationId];
    if (!location) throw new Error(`unknown location id ${JSON.stringify(locationId)}`);
    location.connected = connected;
  }

  const listen = (server: net.Server, port: number | undefined): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port ?? 0, host, () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const servers: net.Server[] = [];
  try {
    const httpPort = await listen(httpServer, options.httpPort);
    servers.push(httpServer);
    const socksPort = await listen(socksServer, options.socksPort);
    servers.push(socksServer);
    const adminPort = adminServer ? await listen(adminServer, options.adminPort) : undefined;
    if (adminServer) servers.push(adminServer);
    return {
      host,
      httpPort,
      socksPort,
      ...(adminPort !== undefined ? { adminPort } : {}),
      stats: () => structuredClone(stats),
      setConnected,
      stop: async () => {
        httpServer.closeAllConnections();
        for (const s of socksSockets) s.destroy();
        await Promise.all(servers.map((s) => closeServer(s)));
      },
    };
  } catch (error) {
    await Promise.all(servers.map((s) => closeServer(s)));
    throw error;
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    if (server instanceof http.Server) server.closeAllConnections();
  });
}
