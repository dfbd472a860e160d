// A stand-in for SAP's connectivity proxy with the Cloud Connector behind it: an HTTP proxy port and a
// SOCKS5 port (method 0x80 only) that accept a JWT from the token service (signature checked against
// its JWKS, client id against the configured ones), pick the Cloud Connector by location id, apply its
// access control and forward to the internal host. It binds identity per client connection, as the
// Cloud Connector does: a connection that carries requests of two identities is refused and counted
// as a violation. Counters: stats() in-process, GET /_peer/stats on the admin port.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type net from 'node:net';
import type { ConnectivityProxyOptions } from './connectivity-config.js';
import { type ConnectivityProxyStats, createContext } from './connectivity-context.js';
import { createHttpPort } from './connectivity-http-port.js';
import { createSocksPort } from './connectivity-socks5-port.js';

export type { ConnectivityProxyStats } from './connectivity-context.js';
export type { ConnectivityProxyOptions, LocationConfig, SystemMapping } from './connectivity-config.js';

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

/** A connectivity service key as a BTP service binding hands it out, for a running stand-in. */
export interface ConnectivityServiceKey {
  clientid: string;
  clientsecret: string;
  url: string;
  token_service_url: string;
  onpremise_proxy_host: string;
  onpremise_proxy_port: string;
  onpremise_proxy_http_port: string;
  onpremise_socks5_proxy_port: string;
}

/**
 * The service key a client of this stand-in uses: the token service (its base URL; tokens at
 * `{url}/oauth/token`), the connectivity client's credentials, the proxy's host and ports (as strings,
 * like SAP's bindings).
 */
export function connectivityServiceKey(o: {
  tokenServiceUrl: string;
  clientId: string;
  clientSecret: string;
  proxyHost: string;
  httpPort: number;
  socksPort: number;
}): ConnectivityServiceKey {
  const url = o.tokenServiceUrl.replace(/\/oauth\/token$/, '');
  return {
    clientid: o.clientId,
    clientsecret: o.clientSecret,
    url,
    token_service_url: url,
    onpremise_proxy_host: o.proxyHost,
    onpremise_proxy_port: String(o.httpPort),
    onpremise_proxy_http_port: String(o.httpPort),
    onpremise_socks5_proxy_port: String(o.socksPort),
  };
}

export async function startConnectivityProxy(options: ConnectivityProxyOptions): Promise<ConnectivityProxy> {
  const host = options.host ?? '127.0.0.1';
  const ctx = createContext(options);
  const { stats, locations } = ctx;
  const httpServer = createHttpPort(ctx);
  const socks = createSocksPort(ctx);
  const socksServer = socks.server;

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
        socks.destroyAll();
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
