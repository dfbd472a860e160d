// Configuration of the peers, generated from one description of the bench world: the upstream nginx
// (checks Authorization), haproxy and nginx as forwarders in sidecar position, detour's destinations
// file, and dnsmasq's arguments. Pure: strings in, strings out.
import { join } from 'node:path';

export interface Upstream {
  /** the server address in `net` */
  host: string;
  /** HTTP port of the upstream nginx (checks Authorization) */
  httpPort: number;
  /** iperf3 -s */
  iperfPort: number;
}

export interface ForwarderPorts {
  /** HTTP forwarder injecting Authorization */
  http: number;
  /** plain TCP to the upstream's iperf3 port */
  tcpIperf: number;
  /** plain TCP to the upstream's HTTP port (the client sends its own Authorization) */
  tcpHttp: number;
}

// Tokens, hosts and paths go into config files verbatim: allow only what needs no quoting anywhere.
const TOKEN = /^[A-Za-z0-9._~+/=-]+$/;
const PLAIN = /^[A-Za-z0-9._:/-]+$/;

function checked(what: string, value: string, re: RegExp): string {
  if (!re.test(value))
    throw new Error(`bench config: ${what} ${JSON.stringify(value)} must match ${re.source}`);
  return value;
}

/** `Bearer <token>`, validated so it can be written into nginx and haproxy configs. */
export function bearer(token: string): string {
  return `Bearer ${checked('token', token, TOKEN)}`;
}

function tempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'scgi', 'uwsgi']
    .map((t) => `  ${t}_temp_path ${checked('directory', join(dir, t), PLAIN)};`)
    .join('\n');
}

/**
 * The upstream: a small body for requests whose Authorization is one of `tokensFile`'s (an nginx map
 * include, see tokensMap), 401 otherwise; /_bench/authorization echoes the header (no check) so the bench
 * can learn which token detour fetched.
 */
export function upstreamNginxConfig(opts: { dir: string; upstream: Upstream; tokensFile: string }): string {
  const { dir, upstream } = opts;
  return `daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 4096; }
http {
  default_type text/plain;
  access_log off;
${tempPaths(dir)}
  keepalive_requests 1000000;
  map_hash_bucket_size 256;
  map $http_authorization $bench_authorized {
    default 0;
    include ${checked('tokens file', opts.tokensFile, PLAIN)};
  }
  server {
    listen ${checked('host', upstream.host, PLAIN)}:${upstream.httpPort} backlog=4096;
    location = /_bench/authorization { return 200 "$http_authorization\\n"; }
    location / {
      if ($bench_authorized = 0) { return 401 "missing or wrong Authorization\\n"; }
      return 200 "hello from the bench upstream\\n";
    }
  }
}
`;
}

/** The map entries for upstreamNginxConfig: each accepted `Authorization` value → 1. */
export function tokensMap(tokens: readonly string[]): string {
  return tokens.map((t) => `"${bearer(t)}" 1;\n`).join('');
}

/**
 * haproxy as the same forwarder: one thread (detour runs one event loop), HTTP with Authorization set
 * and upstream connections reused, two plain TCP forwards.
 */
export function haproxyConfig(opts: { upstream: Upstream; ports: ForwarderPorts; token: string }): string {
  const { upstream: u, ports: p } = opts;
  const host = checked('host', u.host, PLAIN);
  return `global
  nbthread 1
  maxconn 8192

defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  maxconn 8192

listen http
  mode http
  bind 127.0.0.1:${p.http}
  http-reuse always
  http-request set-header Authorization "${bearer(opts.token)}"
  server upstream ${host}:${u.httpPort}

listen tcp-iperf
  mode tcp
  bind 127.0.0.1:${p.tcpIperf}
  server upstream ${host}:${u.iperfPort}

listen tcp-http
  mode tcp
  bind 127.0.0.1:${p.tcpHttp}
  server upstream ${host}:${u.httpPort}
`;
}

/**
 * nginx as the same forwarder: one worker, HTTP with Authorization set and upstream keep-alive, and
 * (when the stream module is installed: Debian libnginx-mod-stream) the two plain TCP forwards.
 */
export function forwarderNginxConfig(opts: {
  dir: string;
  upstream: Upstream;
  ports: ForwarderPorts;
  token: string;
  streamModule?: string;
}): string {
  const { dir, upstream: u, ports: p } = opts;
  const host = checked('host', u.host, PLAIN);
  const load = opts.streamModule ? `load_module ${checked('module', opts.streamModule, PLAIN)};\n` : '';
  const stream = opts.streamModule
    ? `stream {
  server { listen 127.0.0.1:${p.tcpIperf} backlog=4096; proxy_pass ${host}:${u.iperfPort}; }
  server { listen 127.0.0.1:${p.tcpHttp} backlog=4096; proxy_pass ${host}:${u.httpPort}; }
}
`
    : '';
  return `${load}daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log off;
${tempPaths(dir)}
  upstream bench_upstream {
    server ${host}:${u.httpPort};
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${p.http} backlog=4096;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host ${host}:${u.httpPort};
      proxy_set_header Authorization "${bearer(opts.token)}";
    }
  }
}
${stream}`;
}

export interface DestinationNames {
  /** HTTP destination with OAuth2ClientCredentials */
  http: string;
  /** TCP destination to the iperf3 port */
  tcpIperf: string;
  /** TCP destination to the HTTP port */
  tcpHttp: string;
  /** more HTTP destinations, only so that the DNS benchmark has a realistic zone */
  extra: string[];
}

/** detour's destinations file (SAP property names). */
export function destinationsYaml(opts: {
  names: DestinationNames;
  upstream: Upstream;
  tokenServiceUrl: string;
  clientId: string;
  clientSecret: string;
}): string {
  const { names: n, upstream: u } = opts;
  const http = (name: string): string => `- Name: ${name}
  Type: HTTP
  URL: http://${u.host}:${u.httpPort}
  ProxyType: Internet
  Authentication: OAuth2ClientCredentials
  tokenServiceURL: ${opts.tokenServiceUrl}
  clientId: ${opts.clientId}
  clientSecret: ${opts.clientSecret}
`;
  return [
    http(n.http),
    `- Name: ${n.tcpIperf}\n  Type: TCP\n  Address: tcp://${u.host}:${u.iperfPort}\n`,
    `- Name: ${n.tcpHttp}\n  Type: TCP\n  Address: tcp://${u.host}:${u.httpPort}\n`,
    ...n.extra.map(http),
  ].join('');
}

/** dnsmasq answering `records` (name → IPv4) itself, nothing else, in the foreground. */
export function dnsmasqArgs(opts: {
  listen: string;
  port: number;
  records: Record<string, string>;
}): string[] {
  return [
    'dnsmasq',
    '--keep-in-foreground',
    '--no-resolv',
    '--no-hosts',
    '--bind-interfaces',
    '--user=root',
    '--pid-file',
    `--listen-address=${opts.listen}`,
    `--port=${opts.port}`,
    '--local-ttl=30',
    ...Object.entries(opts.records).map(([name, ip]) => `--host-record=${name},${ip}`),
  ];
}

/** dnsperf's query file: each name, type A. */
export function dnsperfQueries(names: readonly string[]): string {
  return names.map((n) => `${n} A\n`).join('');
}
