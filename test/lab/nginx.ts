// A real nginx as the lab's HTTP upstream: its config, starting it in the `net` namespace and waiting
// until it listens. The response names the address the request reached and where it came from:
//   "<body> from <server addr>:<port> to <client addr>\n"
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Background } from './exec.js';

export interface HttpServer {
  port: number;
  /** The access log so far (format `lab`, see nginxConfig). */
  accessLog(): Promise<string>;
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** A directory nginx owns (config, pid file, temp paths, access log). */
  dir: string;
  /** Listen addresses: IPv4 literals and IPv6 literals (without brackets). */
  addresses: string[];
  port: number;
  body: string;
  /** HTTPS with this server certificate; `clientCa` set → a client certificate signed by it is required */
  tls?: NginxTls;
}

export interface NginxTls {
  cert: string;
  key: string;
  clientCa?: string;
}

const SAFE_BODY = /^[A-Za-z0-9 _.,:;/+=@%-]*$/;

function hostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** nginx's config for one lab HTTP server. Every path is inside opts.dir. */
export function nginxConfig(opts: NginxOptions): string {
  // nginx strings cannot escape `$` (it always starts a variable), so keep bodies to plain characters.
  if (!SAFE_BODY.test(opts.body))
    throw new Error(
      `startHttpServer: body ${JSON.stringify(opts.body)} may only contain ${SAFE_BODY.source}`,
    );
  const d = (name: string): string => join(opts.dir, name);
  const ssl = opts.tls ? ' ssl' : '';
  const listen = opts.addresses.map((a) => `    listen ${hostPort(a, opts.port)}${ssl};`).join('\n');
  const tls = opts.tls
    ? [
        `    ssl_certificate ${opts.tls.cert};`,
        `    ssl_certificate_key ${opts.tls.key};`,
        ...(opts.tls.clientCa
          ? [`    ssl_client_certificate ${opts.tls.clientCa};`, '    ssl_verify_client on;']
          : []),
      ].join('\n') + '\n'
    : '';
  const client = opts.tls?.clientCa ? ' client $ssl_client_s_dn' : '';
  return `daemon off;
master_process on;
worker_processes 1;
pid ${d('nginx.pid')};
error_log stderr warn;
events { worker_connections 512; }
http {
  default_type text/plain;
  log_format lab '$remote_addr:$remote_port -> $server_addr:$server_port "$request" $status host="$http_host" auth="$http_authorization" ua="$http_user_agent" client="$ssl_client_s_dn"';
  access_log ${d('access.log')} lab;
  client_body_temp_path ${d('body')};
  proxy_temp_path ${d('proxy')};
  fastcgi_temp_path ${d('fastcgi')};
  scgi_temp_path ${d('scgi')};
  uwsgi_temp_path ${d('uwsgi')};
  server {
${listen}
${tls}    location / {
      return 200 "${opts.body} from $server_addr:$server_port to $remote_addr${client}\\n";
    }
  }
}
`;
}

/** The `ss -Hltnp` lines listening on host:port (exact match of the local address column). */
function listenersOn(ss: string, hp: string): string[] {
  return ss.split('\n').filter((l) => l.split(/\s+/)[3] === hp);
}

/**
 * Starts nginx with `spawnNet` (which runs argv in the net namespace) and waits until nginx itself
 * listens on every address (`listening` returns `ss -Hltnp` output of the net namespace).
 */
export async function startNginx(
  opts: NginxOptions,
  spawnNet: (argv: string[], logFile: string) => Background,
  listening: () => Promise<string>,
): Promise<HttpServer> {
  const want = opts.addresses.map((a) => hostPort(a, opts.port));
  const before = await listening();
  const taken = want.flatMap((hp) => listenersOn(before, hp));
  if (taken.length > 0)
    throw new Error(
      `startHttpServer: port ${opts.port} is already in use in the net namespace:\n${taken.join('\n')}`,
    );
  mkdirSync(opts.dir, { recursive: true });
  const conf = join(opts.dir, 'nginx.conf');
  const accessLog = join(opts.dir, 'access.log');
  writeFileSync(conf, nginxConfig(opts));
  writeFileSync(accessLog, '');
  const bg = spawnNet(['nginx', '-p', opts.dir, '-c', conf, '-e', 'stderr'], join(opts.dir, 'nginx.out'));
  const deadline = Date.now() + 10_000;
  let exited = false;
  void bg.exited.then(() => (exited = true));
  for (;;) {
    if (exited)
      throw new Error(
        `nginx for port ${opts.port} exited during start-up: ${bg.output().trim() || '(no output)'}`,
      );
    const ss = await listening();
    // The master holds the listening sockets; a socket of anyone else on the same address does not count.
    const missing = want.filter((hp) => !listenersOn(ss, hp).some((l) => l.includes(`pid=${bg.pid},`)));
    if (missing.length === 0) break;
    if (Date.now() > deadline) {
      await bg.stop();
      throw new Error(
        `nginx is not listening on ${missing.join(', ')} after 10 s; output: ${bg.output().trim() || '(none)'}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port: opts.port,
    accessLog: async () => readFileSync(accessLog, 'utf8'),
    stop: () => bg.stop(),
  };
}
