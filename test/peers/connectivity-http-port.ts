// The connectivity proxy stand-in's HTTP proxy port: absolute-form http:// requests with a Bearer
// Proxy-Authorization, the location id header, principal / technical user propagation, the Cloud
// Connector's access control, and per-connection identity binding; then forwarding to the backend
// over a connection of the client connection's own.
import http from 'node:http';
import type net from 'node:net';
import { connect as netConnect } from 'node:net';
import { resolveLocation, resolveSystem } from './connectivity-config.js';
import { BACKEND_CONNECT_TIMEOUT_MS, bump, type ProxyContext } from './connectivity-context.js';
import {
  backendHeaders,
  bearerToken,
  checkProxyRequest,
  HEADER_LOCATION,
  HEADER_TECHNICAL_USER,
  HEADER_USER,
} from './connectivity-http.js';
import { clientIdOf, type JwtClaims } from './jwt.js';

interface Principal {
  name: string;
  type: 'user' | 'technical';
}

/** A refusal: status and the reason, for the response body. */
class Refusal {
  readonly status: number;
  readonly message: string;
  readonly headers: http.OutgoingHttpHeaders;
  constructor(status: number, message: string, headers: http.OutgoingHttpHeaders = {}) {
    this.status = status;
    this.message = message;
    this.headers = headers;
  }
}

export function createHttpPort(ctx: ProxyContext): http.Server {
  const { stats } = ctx;
  const server = http.createServer();
  const identities = new WeakMap<net.Socket, string>();
  const agents = new WeakMap<net.Socket, http.Agent>();

  server.on('connection', (socket: net.Socket) => {
    socket.once('close', () => agents.get(socket)?.destroy());
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket) => {
    socket.on('error', () => socket.destroy());
    stats.requests++;
    bump(stats.byStatus, '405');
    const check = checkProxyRequest('CONNECT', req.url ?? '');
    const body = check.ok ? '' : `${check.message}\n`;
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    stats.requests++;
    socket.on('error', () => socket.destroy());
    handleUpgrade(req, socket, head).catch((error: unknown) => {
      const r = error instanceof Refusal ? error : new Refusal(500, `stand-in failure: ${String(error)}`);
      bump(stats.byStatus, String(r.status));
      const body = `${r.message}\n`;
      const extra = Object.entries(r.headers)
        .filter(([name]) => name !== 'connection')
        .map(([k, v]) => `${k}: ${String(v)}\r\n`)
        .join('');
      socket.end(
        `HTTP/1.1 ${r.status} ${http.STATUS_CODES[r.status] ?? ''}\r\ncontent-type: text/plain\r\n${extra}` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    stats.requests++;
    handle(req, res).catch((error: unknown) => {
      const refusal =
        error instanceof Refusal ? error : new Refusal(500, `stand-in failure: ${String(error)}`);
      reply(res, refusal);
    });
  });

  const reply = (res: http.ServerResponse, r: Refusal): void => {
    bump(stats.byStatus, String(r.status));
    if (res.headersSent) return void res.destroy();
    res.writeHead(r.status, { 'content-type': 'text/plain', ...r.headers });
    res.end(`${r.message}\n`);
  };

  interface Admission {
    internal: { host: string; port: number };
    path: string;
    headers: http.OutgoingHttpHeaders;
    count: () => void;
  }

  /** Everything the proxy and the Cloud Connector check before a request may go to the backend. */
  async function admit(req: http.IncomingMessage): Promise<Admission> {
    const check = checkProxyRequest(req.method ?? 'GET', req.url ?? '');
    if (!check.ok) throw new Refusal(check.status, check.message);
    const claims = await ctx.authenticate(bearerToken(req.headers['proxy-authorization']));
    if (typeof claims === 'string')
      throw new Refusal(407, `Proxy-Authorization rejected: ${claims}`, {
        'proxy-authenticate': 'Bearer realm="connectivity-proxy"',
      });
    const locationId = String(req.headers[HEADER_LOCATION] ?? '');
    const found = resolveLocation(ctx.locations, locationId);
    if (!found.ok)
      throw new Refusal(
        503,
        found.reason === 'unknown'
          ? `no Cloud Connector is connected for location id ${JSON.stringify(locationId)}`
          : `the Cloud Connector of location id ${JSON.stringify(locationId)} is disconnected`,
      );
    const tenant = typeof claims.zid === 'string' ? claims.zid : undefined;
    const principal = await propagatedPrincipal(req, claims, tenant);
    bindIdentity(req.socket, `${tenant ?? ''}|${principal?.type ?? 'none'}:${principal?.name ?? ''}`);

    const system = resolveSystem(found.location, check.host, check.port, 'http', check.path);
    if (!system.ok)
      throw new Refusal(
        403,
        system.reason === 'path-denied'
          ? `access denied: path ${check.path.split('?')[0]} of ${check.host}:${check.port} is not exposed by the Cloud Connector`
          : `access denied: ${check.host}:${check.port} is not an HTTP system in the Cloud Connector's access control`,
      );
    const internal = { host: system.system.internalHost, port: system.system.internalPort };
    return {
      internal,
      path: check.path,
      headers: backendHeaders(
        req.headers,
        internal,
        principal && { ...principal, ...(tenant ? { tenant } : {}) },
      ),
      count: () => {
        stats.forwarded++;
        bump(stats.byLocation, locationId);
        bump(stats.byPrincipal, principal?.name ?? '');
      },
    };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const a = await admit(req);
    await forward(req, res, a.internal, a.path, a.headers, a.count);
  }

  /**
   * WebSocket and other Upgrade requests: admitted like any request, then a connection of their own
   * to the backend carrying the request with its Upgrade/Connection headers, and the bytes piped.
   */
  async function handleUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const a = await admit(req);
    const headers = { ...a.headers, connection: 'Upgrade', upgrade: String(req.headers.upgrade) };
    const upstream = netConnect({ host: a.internal.host, port: a.internal.port });
    upstream.setTimeout(BACKEND_CONNECT_TIMEOUT_MS, () => upstream.destroy(new Error('backend timed out')));
    await new Promise<void>((resolve, reject) => {
      upstream.once('connect', () => resolve());
      upstream.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new Refusal(502, `the Cloud Connector could not reach the backend: ${error.code ?? error.message}`),
        ),
      );
    });
    upstream.setTimeout(0);
    a.count();
    const lines = [`${req.method} ${a.path} HTTP/1.1`];
    for (const [name, value] of Object.entries(headers))
      for (const v of Array.isArray(value) ? value : [value])
        if (v !== undefined) lines.push(`${name}: ${String(v)}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length > 0) upstream.write(head);
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    socket.pipe(upstream);
    upstream.pipe(socket);
  }

  /** The Cloud Connector binds identity per connection: a second identity on one connection is refused. */
  function bindIdentity(socket: net.Socket, identity: string): void {
    const bound = identities.get(socket);
    if (bound === undefined) return void identities.set(socket, identity);
    if (bound === identity) return;
    stats.violations++;
    throw new Refusal(
      403,
      'identity binding violation: this connection already carried requests of another identity',
      { connection: 'close' },
    );
  }

  /**
   * The principal to propagate (undefined for none). SAP: the user comes in SAP-Connectivity-Authentication
   * or, exchanged into the proxy token, in Proxy-Authorization (then SAP-Connectivity-Authentication
   * must not be sent); a technical user in SAP-Connectivity-Technical-Authentication; the Authorization
   * header must be omitted in both scenarios.
   */
  async function propagatedPrincipal(
    req: http.IncomingMessage,
    proxyClaims: JwtClaims,
    tenant: string | undefined,
  ): Promise<Principal | undefined> {
    const user = req.headers[HEADER_USER];
    const technical = req.headers[HEADER_TECHNICAL_USER];
    const proxyUser = typeof proxyClaims.user_name === 'string' ? proxyClaims.user_name : undefined;
    if (user !== undefined && technical !== undefined)
      throw new Refusal(
        400,
        'SAP-Connectivity-Authentication and SAP-Connectivity-Technical-Authentication are mutually exclusive',
      );
    if (proxyUser !== undefined && user !== undefined)
      throw new Refusal(
        400,
        'SAP-Connectivity-Authentication must not be sent when Proxy-Authorization carries the user',
      );
    const propagating = user !== undefined || technical !== undefined || proxyUser !== undefined;
    if (propagating && req.headers.authorization !== undefined)
      throw new Refusal(
        400,
        'the Authorization header must be omitted in principal or technical user propagation',
      );
    if (proxyUser !== undefined) return { name: proxyUser, type: 'user' };
    if (user !== undefined) return verifiedPrincipal('SAP-Connectivity-Authentication', user, 'user', tenant);
    if (technical !== undefined)
      return verifiedPrincipal('SAP-Connectivity-Technical-Authentication', technical, 'technical', tenant);
    return undefined;
  }

  async function verifiedPrincipal(
    header: string,
    value: string | string[],
    type: Principal['type'],
    tenant: string | undefined,
  ): Promise<Principal> {
    const token = bearerToken(value);
    if (!token) throw new Refusal(401, `${header} must be "Bearer <JWT>"`);
    let claims: JwtClaims;
    try {
      claims = await ctx.verify(token);
    } catch (error) {
      throw new Refusal(401, `${header} rejected: ${(error as Error).message}`);
    }
    if (tenant !== undefined && claims.zid !== undefined && claims.zid !== tenant)
      throw new Refusal(
        401,
        `${header} rejected: the token is of tenant ${String(claims.zid)}, the proxy token of ${tenant}`,
      );
    const name = type === 'user' ? claims.user_name : (claims.user_name ?? clientIdOf(claims));
    if (typeof name !== 'string' || name === '')
      throw new Refusal(
        401,
        `${header} rejected: the token has no ${type === 'user' ? 'user_name' : 'user_name or client id'}`,
      );
    return { name, type };
  }

  /** Streams the request to the backend and the answer back, on the client connection's own agent. */
  function forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    internal: { host: string; port: number },
    path: string,
    headers: http.OutgoingHttpHeaders,
    onResponse: () => void,
  ): Promise<void> {
    let agent = agents.get(req.socket);
    if (!agent) agents.set(req.socket, (agent = new http.Agent({ keepAlive: true, maxSockets: 1 })));
    return new Promise<void>((resolve) => {
      const upstream = http.request({
        host: internal.host,
        port: internal.port,
        method: req.method,
        path,
        headers,
        agent,
        timeout: BACKEND_CONNECT_TIMEOUT_MS,
      });
      upstream.on('response', (up) => {
        upstream.setTimeout(0);
        onResponse();
        bump(stats.byStatus, String(up.statusCode));
        const answer = { ...up.headers };
        delete answer.connection;
        delete answer['keep-alive'];
        res.writeHead(up.statusCode ?? 502, answer);
        up.pipe(res);
        up.on('end', resolve);
        up.on('error', () => {
          res.destroy();
          resolve();
        });
      });
      upstream.on('timeout', () => upstream.destroy(new Error('backend timed out')));
      upstream.on('error', (error: NodeJS.ErrnoException) => {
        reply(
          res,
          new Refusal(502, `the Cloud Connector could not reach the backend: ${error.code ?? error.message}`),
        );
        resolve();
      });
      req.pipe(upstream);
    });
  }

  return server;
}
