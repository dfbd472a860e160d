// The bench world, built on test/lab: upstream peers in `net` (nginx checking Authorization, iperf3 -s,
// the oidc-provider token server, dnsmasq) and, in `app`, detour's rules and dataplane plus haproxy and
// nginx as forwarders in sidecar position. Describes each path as the client sees it.
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../test/lab/lab.js';
import {
  destinationsYaml,
  dnsmasqArgs,
  dnsperfQueries,
  forwarderNginxConfig,
  haproxyConfig,
  tokensMap,
  upstreamNginxConfig,
  type DestinationNames,
  type ForwarderPorts,
  type Upstream,
} from './configs.js';
import { childrenOf } from './proc.js';

/** The app's UID: its traffic is redirected to the dataplane. */
export const APP_UID = 1000;
/** The `direct` path's UID: excluded from redirection (--exclude-outbound-ports-for-uids). */
export const DIRECT_UID = 1001;
/** The dataplane's UID (the loop breaker); haproxy and nginx run as it too, as a sidecar would. */
export const SIDECAR_UID = 5678;
export const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export type PathName = 'direct' | 'detour' | 'haproxy' | 'nginx';
export const PATHS: readonly PathName[] = ['direct', 'detour', 'haproxy', 'nginx'];
export const PEERS: readonly PathName[] = ['haproxy', 'nginx'];

export interface HttpTarget {
  url: string;
  /** headers the client itself sends (`Name: value`) */
  headers: string[];
}

export interface PathSpec {
  name: PathName;
  /** the client runs as this UID in `app` */
  uid: number;
  /** HTTP with the Authorization header injected by the forwarder (direct: sent by the client) */
  http: HttpTarget;
  /** iperf3 server as reached through this path; undefined: the path has no TCP forward */
  iperf?: { host: string; port: number };
  /** the upstream's HTTP port through plain TCP forwarding (the client sends Authorization itself) */
  tcpHttp?: HttpTarget;
  /** why the TCP rows are missing */
  tcpMissing?: string;
  /** the forwarder's processes (none for direct) */
  pids(): number[];
}

export interface DnsServerSpec {
  name: string;
  server: string;
  port: number;
  uid: number;
}

export interface World {
  lab: Lab;
  paths: PathSpec[];
  dns: { servers: DnsServerSpec[]; queryFile: string; names: string[] };
  /** a directory every client UID may write to (tool outputs) */
  clientDir: string;
  dataplanePid: number;
  /** the dataplane's /metrics text */
  dataplaneMetrics(): Promise<string>;
  destroy(): Promise<void>;
}

const UPSTREAM: Upstream = { host: '198.51.100.10', httpPort: 80, iperfPort: 5201 };
const TOKEN_PORT = 9000;
const HAPROXY_PORTS: ForwarderPorts = { http: 18080, tcpIperf: 15201, tcpHttp: 18081 };
const NGINX_PORTS: ForwarderPorts = { http: 28080, tcpIperf: 25201, tcpHttp: 28081 };
const NAMES: DestinationNames = {
  http: 'bench-http',
  tcpIperf: 'bench-iperf',
  tcpHttp: 'bench-tcp-http',
  extra: Array.from({ length: 13 }, (_, i) => `bench-dns-${String(i + 1).padStart(2, '0')}`),
};
const CLIENT_ID = 'bench-client';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'bin', 'detour.js'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: cannot find the repository root (bin/detour.js)');
    dir = up;
  }
  return dir;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `bench: timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    await sleep(100);
  }
}

function ownedDir(path: string, uid: number, mode = 0o755): string {
  mkdirSync(path, { recursive: true });
  chownSync(path, uid, uid);
  chmodSync(path, mode);
  return path;
}

function privateFile(path: string, content: string, uid: number): string {
  writeFileSync(path, content, { mode: 0o600 });
  chownSync(path, uid, uid);
  return path;
}

/**
 * Builds the world; the peers' and the dataplane's output goes to `<logDir>/<name>.log`. With
 * `profileDir`, the dataplane runs under V8's CPU profiler and writes its .cpuprofile there on exit.
 */
export async function buildWorld(
  log: (line: string) => void,
  logDir: string,
  profileDir?: string,
): Promise<World> {
  const repo = repoRoot();
  const detour = join(repo, 'bin', 'detour.js');
  cleanupStaleLabs();
  const lab = await createLab({ ipv6: false });
  try {
    return await populate(lab, repo, detour, log, logDir, profileDir);
  } catch (e) {
    await lab.destroy().catch(() => undefined);
    throw e;
  }
}

async function populate(
  lab: Lab,
  repo: string,
  detour: string,
  log: (line: string) => void,
  logDir: string,
  profileDir: string | undefined,
): Promise<World> {
  let tearingDown = false;
  chmodSync(lab.dir, 0o755);
  const clientDir = ownedDir(join(lab.dir, 'client'), 0, 0o1777);
  const curl = (ns: 'app' | 'net', args: string[], uid?: number) =>
    lab.run(ns, ['curl', '-sS', '--max-time', '10', ...args], { uid, reject: false });
  const logFile = (name: string): { logFile: string } => ({ logFile: join(logDir, `${name}.log`) });
  const spawned = (bg: Background, what: string): Background => {
    void bg.exited.then((code) => {
      if (!tearingDown && code !== 0 && code !== null && code !== 143)
        log(`${what} exited with ${code}: ${bg.output().slice(-500)}`);
    });
    return bg;
  };

  // net: token server, iperf3, upstream nginx.
  log('starting the upstream peers in net (oidc-provider, iperf3, nginx)');
  const clientSecret = randomBytes(18).toString('base64url');
  const oauth = spawned(
    lab.spawn(
      'net',
      [
        process.execPath,
        join(repo, 'dist', 'test', 'peers', 'oauth-server-cli.js'),
        JSON.stringify({
          host: UPSTREAM.host,
          port: TOKEN_PORT,
          clients: [{ clientId: CLIENT_ID, clientSecret, grantTypes: ['client_credentials'] }],
          accessTokenTtlSeconds: 3600,
        }),
      ],
      logFile('token-server'),
    ),
    'token server',
  );
  spawned(
    lab.spawn(
      'net',
      ['iperf3', '-s', '-B', UPSTREAM.host, '-p', String(UPSTREAM.iperfPort)],
      logFile('iperf3'),
    ),
    'iperf3 -s',
  );
  await oauth.waitFor(/oauth ready/, 20_000);
  const tokenUrl = `http://${UPSTREAM.host}:${TOKEN_PORT}/oauth/token`;
  const tokenResponse = await curl('net', [
    '-u',
    `${CLIENT_ID}:${clientSecret}`,
    '-d',
    'grant_type=client_credentials',
    tokenUrl,
  ]);
  const peerToken = (JSON.parse(tokenResponse.stdout || '{}') as { access_token?: string }).access_token;
  if (!peerToken)
    throw new Error(`bench: the token server gave no access_token (status ${tokenResponse.exitCode})`);

  const upstreamDir = ownedDir(join(lab.dir, 'upstream'), 0);
  const tokensFile = join(upstreamDir, 'tokens.map');
  writeFileSync(tokensFile, tokensMap([peerToken]));
  const upstreamConf = join(upstreamDir, 'nginx.conf');
  writeFileSync(upstreamConf, upstreamNginxConfig({ dir: upstreamDir, upstream: UPSTREAM, tokensFile }));
  const upstream = spawned(
    lab.spawn(
      'net',
      ['nginx', '-p', upstreamDir, '-c', upstreamConf, '-e', 'stderr'],
      logFile('upstream-nginx'),
    ),
    'upstream nginx',
  );
  const bearerHeader = `Authorization: Bearer ${peerToken}`;
  const directUrl = `http://${UPSTREAM.host}:${UPSTREAM.httpPort}/`;
  await until('the upstream nginx', 10_000, async () =>
    (await curl('app', ['-o', '/dev/null', '-w', '%{http_code}', '-H', bearerHeader, directUrl], DIRECT_UID))
      .stdout === '200'
      ? true
      : undefined,
  );

  // app: rules and the dataplane.
  log('installing the transparent-proxy rules and starting the dataplane in app');
  const detourDir = ownedDir(join(lab.dir, 'detour'), 0);
  const destinations = join(detourDir, 'destinations.yaml');
  privateFile(
    destinations,
    destinationsYaml({
      names: NAMES,
      upstream: UPSTREAM,
      tokenServiceUrl: tokenUrl,
      clientId: CLIENT_ID,
      clientSecret,
    }),
    SIDECAR_UID,
  );
  await lab.run('app', [
    process.execPath,
    detour,
    'install',
    'transparent-proxy',
    '--redirect-dns',
    '--redirect-inbound',
    'false',
    '--exclude-outbound-ports-for-uids',
    String(DIRECT_UID),
  ]);
  // Access logs off here as on haproxy and nginx: warnings and errors only.
  const dataplane = spawned(
    lab.spawn(
      'app',
      [
        process.execPath,
        ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ownedDir(profileDir, SIDECAR_UID)}`] : []),
        detour,
        'dataplane',
        '--user',
        String(SIDECAR_UID),
        '--no-inbound',
        '--log-level',
        'warn',
        '--destinations',
        destinations,
      ],
      logFile('dataplane'),
    ),
    'dataplane',
  );
  const admin = (path: string) =>
    lab.run('app', ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:9901${path}`], { reject: false });
  await until('the dataplane (/ready)', 30_000, async () =>
    (await admin('/ready')).stdout.includes('"ready":true') ? true : undefined,
  );

  // Learn the token detour fetched, then let the upstream accept it too.
  const detourUrl = `http://${NAMES.http}/`;
  const seen = await until('detour to forward a request', 20_000, async () => {
    const r = await curl('app', [`http://${NAMES.http}/_bench/authorization`], APP_UID);
    const m = /^Bearer (\S+)\s*$/.exec(r.stdout);
    return m ? m[1] : undefined;
  });
  writeFileSync(tokensFile, tokensMap([peerToken, seen]));
  process.kill(upstream.pid, 'SIGHUP');
  await until('the upstream to accept detour’s token', 10_000, async () =>
    (await curl('app', ['-o', '/dev/null', '-w', '%{http_code}', detourUrl], APP_UID)).stdout === '200'
      ? true
      : undefined,
  );

  // app: haproxy and nginx as the same forwarder, in sidecar position (the dataplane's UID).
  log('starting haproxy and nginx as forwarders in app');
  const haproxyDir = ownedDir(join(lab.dir, 'haproxy'), SIDECAR_UID);
  const haproxyConf = privateFile(
    join(haproxyDir, 'haproxy.cfg'),
    haproxyConfig({ upstream: UPSTREAM, ports: HAPROXY_PORTS, token: peerToken }),
    SIDECAR_UID,
  );
  const haproxy = spawned(
    lab.spawn('app', ['haproxy', '-db', '-f', haproxyConf], { uid: SIDECAR_UID, ...logFile('haproxy') }),
    'haproxy',
  );
  const nginxDir = ownedDir(join(lab.dir, 'nginx'), SIDECAR_UID);
  const stream = existsSync(STREAM_MODULE);
  const nginxConf = privateFile(
    join(nginxDir, 'nginx.conf'),
    forwarderNginxConfig({
      dir: nginxDir,
      upstream: UPSTREAM,
      ports: NGINX_PORTS,
      token: peerToken,
      ...(stream ? { streamModule: STREAM_MODULE } : {}),
    }),
    SIDECAR_UID,
  );
  const nginx = spawned(
    lab.spawn('app', ['nginx', '-p', nginxDir, '-c', nginxConf, '-e', 'stderr'], {
      uid: SIDECAR_UID,
      ...logFile('nginx'),
    }),
    'forwarder nginx',
  );
  const want = [
    ...Object.values(HAPROXY_PORTS),
    NGINX_PORTS.http,
    ...(stream ? [NGINX_PORTS.tcpIperf, NGINX_PORTS.tcpHttp] : []),
  ];
  await until('haproxy and nginx to listen', 15_000, async () => {
    const ss = (await lab.run('app', ['ss', '-Hltn'])).stdout;
    return want.every((p) => ss.includes(`127.0.0.1:${p} `)) ? true : undefined;
  });

  const nginxMissing = stream
    ? undefined
    : `nginx has no stream module (${STREAM_MODULE}); install Debian's libnginx-mod-stream`;
  const tokenHeader = [bearerHeader];
  const paths: PathSpec[] = [
    {
      name: 'direct',
      uid: DIRECT_UID,
      http: { url: directUrl, headers: tokenHeader },
      iperf: { host: UPSTREAM.host, port: UPSTREAM.iperfPort },
      tcpHttp: { url: directUrl, headers: tokenHeader },
      pids: () => [],
    },
    {
      name: 'detour',
      uid: APP_UID,
      http: { url: detourUrl, headers: [] },
      iperf: { host: NAMES.tcpIperf, port: UPSTREAM.iperfPort },
      tcpHttp: { url: `http://${NAMES.tcpHttp}/`, headers: tokenHeader },
      pids: () => [dataplane.pid],
    },
    {
      name: 'haproxy',
      uid: APP_UID,
      http: { url: `http://127.0.0.1:${HAPROXY_PORTS.http}/`, headers: [] },
      iperf: { host: '127.0.0.1', port: HAPROXY_PORTS.tcpIperf },
      tcpHttp: { url: `http://127.0.0.1:${HAPROXY_PORTS.tcpHttp}/`, headers: tokenHeader },
      pids: () => [haproxy.pid],
    },
    {
      name: 'nginx',
      uid: APP_UID,
      http: { url: `http://127.0.0.1:${NGINX_PORTS.http}/`, headers: [] },
      ...(stream
        ? {
            iperf: { host: '127.0.0.1', port: NGINX_PORTS.tcpIperf },
            tcpHttp: { url: `http://127.0.0.1:${NGINX_PORTS.tcpHttp}/`, headers: tokenHeader },
          }
        : { tcpMissing: nginxMissing }),
      pids: () => [nginx.pid, ...childrenOf(nginx.pid)],
    },
  ];
  for (const p of paths) {
    const code = await until(`the ${p.name} path to answer 200`, 10_000, async () => {
      const r = await curl(
        'app',
        ['-o', '/dev/null', '-w', '%{http_code}', ...p.http.headers.flatMap((h) => ['-H', h]), p.http.url],
        p.uid,
      );
      return r.stdout === '200' ? r.stdout : undefined;
    });
    log(`path ${p.name}: ${p.http.url} → ${code}`);
  }

  // DNS: dnsmasq in net answers the destination names with the VIPs the embedded DNS gives out.
  const config = JSON.parse((await admin('/config')).stdout) as {
    destinations: { Name: string; vip?: { ipv4?: string } }[];
  };
  const names = [NAMES.http, NAMES.tcpIperf, NAMES.tcpHttp, ...NAMES.extra];
  const records: Record<string, string> = {};
  for (const n of names) {
    const vip = config.destinations.find((d) => d.Name === n)?.vip?.ipv4;
    if (!vip) throw new Error(`bench: the dataplane's /config has no VIP for ${n}`);
    records[n] = vip;
  }
  const dnsAddr = lab.addr.dnsV4;
  spawned(
    lab.spawn('net', dnsmasqArgs({ listen: dnsAddr, port: 53, records }), logFile('dnsmasq')),
    'dnsmasq',
  );
  await until('dnsmasq', 10_000, async () => {
    const r = await lab.run('app', ['dig', '+short', '+time=1', '+tries=1', `@${dnsAddr}`, NAMES.http], {
      uid: DIRECT_UID,
      reject: false,
    });
    return r.stdout.trim() === records[NAMES.http] ? true : undefined;
  });
  const queryFile = join(clientDir, 'queries.txt');
  writeFileSync(queryFile, dnsperfQueries(names), { mode: 0o644 });

  return {
    lab,
    paths,
    clientDir,
    dataplanePid: dataplane.pid,
    dns: {
      // The app's view: queries to its resolv.conf server, redirected by the rules to the embedded DNS.
      servers: [
        { name: 'detour', server: dnsAddr, port: 53, uid: APP_UID },
        { name: 'dnsmasq', server: dnsAddr, port: 53, uid: DIRECT_UID },
      ],
      queryFile,
      names,
    },
    dataplaneMetrics: async () => (await admin('/metrics')).stdout,
    destroy: () => {
      tearingDown = true;
      return lab.destroy();
    },
  };
}
