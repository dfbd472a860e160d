// The on-premise world for e2e tests, in a lab created with { onprem: true }: oidc-provider issuing
// JWTs (198.51.100.10:9000), the connectivity proxy stand-in (198.51.100.11, HTTP 20003, SOCKS5 20004,
// admin 20005) in `net`, and in `onprem` nginx (:80), the echo upstream (:8080) and PostgreSQL (:5432)
// behind the virtual hosts erp.internal:80, echo.internal:8080 (paths /api only) and db.internal:5432
// (TCP). Everything runs as lab background processes; stop() ends them (destroy() would too).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Background, HttpServer, Lab } from '../lab/lab.js';
import { startPostgres, type PostgresServer } from '../lab/postgres.js';
import type { LocationConfig } from '../peers/connectivity-config.js';
import type { ConnectivityProxyStats } from '../peers/connectivity-context.js';
import { connectivityServiceKey, type ConnectivityServiceKey } from '../peers/connectivity-proxy.js';
import { REPO } from './helpers.js';

export const OAUTH_HOST = '198.51.100.10';
export const OAUTH_PORT = 9000;
export const CP_HOST = '198.51.100.11';
export const CP_PORTS = { http: 20003, socks5: 20004, admin: 20005 } as const;

/** Token clients: cp = the connectivity service key's client; app = the application (user tokens). */
export const ONPREM_CLIENTS = {
  cp: { id: 'cp-client', secret: 'cp-SECRET-123' },
  app: { id: 'app-client', secret: 'app-SECRET-456' },
  other: { id: 'other-client', secret: 'other-SECRET-789' },
} as const;
export const ONPREM_USERS = { alice: 'alice-PW-1', bob: 'bob-PW-2' } as const;

export interface OnpremWorldOptions {
  /** tenant (zid) of all tokens; default 'tenant-a' */
  zoneId?: string;
  /** extra or replaced locations of the stand-in ('' = default) */
  locations?: Record<string, LocationConfig>;
  /** SAP's trusted mode at the stand-in */
  trusted?: boolean;
  /** skip PostgreSQL (saves a few seconds) */
  postgres?: boolean;
}

export interface OnpremWorld {
  tokenUrl: string;
  jwksUrl: string;
  /** the connectivity service key for the cp client, and a copy of it in lab.dir (mode 0644) */
  serviceKey: ConnectivityServiceKey;
  serviceKeyFile: string;
  cp: { host: string; httpPort: number; socksPort: number; adminPort: number };
  onprem: { nginx: HttpServer; echoPort: number; postgres?: PostgresServer };
  /** a token fetched from inside `net`: client credentials, or the password grant for `user` */
  token(client: keyof typeof ONPREM_CLIENTS, user?: keyof typeof ONPREM_USERS): Promise<string>;
  /** the stand-in's counters (GET /_peer/stats) */
  stats(): Promise<ConnectivityProxyStats>;
  /** connects or disconnects a location's Cloud Connector (PUT /_peer/locations/<id>) */
  setConnected(locationId: string, connected: boolean): Promise<void>;
  processes: Background[];
  stop(): Promise<void>;
}

export async function startOnpremWorld(lab: Lab, opts: OnpremWorldOptions = {}): Promise<OnpremWorld> {
  if (!lab.onprem) throw new Error('startOnpremWorld: create the lab with { onprem: true }');
  const processes: Background[] = [];
  const peer = (ns: 'net' | 'onprem', script: string, args: string[]): Background => {
    const bg = lab.spawn(ns, ['node', join(REPO, 'dist', 'test', 'peers', script), ...args]);
    processes.push(bg);
    return bg;
  };
  const o = lab.addr.onpremV4;
  try {
    const nginx = await lab.startHttpServer({ ns: 'onprem', port: 80, body: 'onprem-erp' });
    const echo = peer('onprem', 'echo-upstream-cli.js', [o, '8080']);
    const postgres = opts.postgres === false ? undefined : await startPostgres(lab, 'onprem');
    const client = (c: { id: string; secret: string }, grantTypes: string[]) => ({
      clientId: c.id,
      clientSecret: c.secret,
      grantTypes,
      accessTokenFormat: 'jwt',
    });
    const oauth = peer('net', 'oauth-server-cli.js', [
      JSON.stringify({
        host: OAUTH_HOST,
        port: OAUTH_PORT,
        zoneId: opts.zoneId ?? 'tenant-a',
        clients: [
          client(ONPREM_CLIENTS.cp, ['client_credentials', 'password']),
          client(ONPREM_CLIENTS.app, ['password', 'client_credentials']),
          client(ONPREM_CLIENTS.other, ['client_credentials']),
        ],
        users: Object.entries(ONPREM_USERS).map(([username, password]) => ({ username, password })),
      }),
    ]);
    await echo.waitFor(/echo ready/, 15_000);
    await oauth.waitFor(/oauth ready/, 15_000);

    const erp = { virtualHost: 'erp.internal', virtualPort: 80, internalHost: o, internalPort: 80 };
    const systems = [
      erp,
      {
        virtualHost: 'echo.internal',
        virtualPort: 8080,
        internalHost: o,
        internalPort: 8080,
        paths: ['/api'],
      },
      ...(postgres
        ? [
            {
              virtualHost: 'db.internal',
              virtualPort: 5432,
              internalHost: o,
              internalPort: postgres.port,
              protocol: 'tcp',
            },
          ]
        : []),
    ];
    const base = `http://${OAUTH_HOST}:${OAUTH_PORT}`;
    const cp = peer('net', 'connectivity-proxy-cli.js', [
      JSON.stringify({
        host: CP_HOST,
        httpPort: CP_PORTS.http,
        socksPort: CP_PORTS.socks5,
        adminPort: CP_PORTS.admin,
        jwksUrl: `${base}/jwks`,
        clientIds: [ONPREM_CLIENTS.cp.id],
        ...(opts.trusted ? { trusted: true } : {}),
        locations: {
          '': { systems },
          'cloud-sdk-js': { systems: [erp] },
          offline: { connected: false, systems: [erp] },
          ...opts.locations,
        },
      }),
    ]);
    await cp.waitFor(/connectivity-proxy ready/, 15_000);

    const serviceKey = connectivityServiceKey({
      tokenServiceUrl: base,
      clientId: ONPREM_CLIENTS.cp.id,
      clientSecret: ONPREM_CLIENTS.cp.secret,
      proxyHost: CP_HOST,
      httpPort: CP_PORTS.http,
      socksPort: CP_PORTS.socks5,
    });
    const serviceKeyFile = join(lab.dir, 'connectivity-key.json');
    writeFileSync(serviceKeyFile, JSON.stringify(serviceKey, null, 2), { mode: 0o644 });
    const admin = `http://${CP_HOST}:${CP_PORTS.admin}`;

    return {
      tokenUrl: `${base}/oauth/token`,
      jwksUrl: `${base}/jwks`,
      serviceKey,
      serviceKeyFile,
      cp: { host: CP_HOST, httpPort: CP_PORTS.http, socksPort: CP_PORTS.socks5, adminPort: CP_PORTS.admin },
      onprem: { nginx, echoPort: 8080, ...(postgres ? { postgres } : {}) },
      async token(name, user) {
        const c = ONPREM_CLIENTS[name];
        const form = user
          ? ['grant_type=password', `username=${user}`, `password=${ONPREM_USERS[user]}`]
          : ['grant_type=client_credentials'];
        const argv = ['curl', '-sS', '-u', `${c.id}:${c.secret}`, ...form.flatMap((f) => ['-d', f])];
        const out = await lab.run('net', [...argv, `${base}/oauth/token`]);
        const token = (JSON.parse(out.stdout) as { access_token?: string }).access_token;
        if (!token)
          throw new Error(`no token for ${c.id}${user ? ` / ${user}` : ''} from the lab's token service`);
        return token;
      },
      async stats() {
        return JSON.parse(
          (await lab.run('net', ['curl', '-sS', `${admin}/_peer/stats`])).stdout,
        ) as ConnectivityProxyStats;
      },
      async setConnected(locationId, connected) {
        await lab.run('net', [
          'curl',
          '-sS',
          '--fail',
          '-X',
          'PUT',
          '-d',
          JSON.stringify({ connected }),
          `${admin}/_peer/locations/${encodeURIComponent(locationId)}`,
        ]);
      },
      processes,
      async stop() {
        await Promise.all(processes.map((p) => p.stop()));
        await postgres?.stop();
        await nginx.stop();
      },
    };
  } catch (error) {
    await Promise.all(processes.map((p) => p.stop()));
    throw error;
  }
}
