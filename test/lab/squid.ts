// A real squid as the lab's corporate HTTP proxy: its own config (no cache, no daemon, logs in its
// directory), optional Basic authentication (basic_ncsa_auth with an `openssl passwd -apr1` file),
// CONNECT allowed to any port. Runs in a lab namespace; DNS only from its own hosts file.
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabNs } from './lab.js';

export interface SquidOptions {
  /** namespace to run in (default net) */
  ns?: LabNs;
  /** listen address (default the lab's server2V4) */
  address?: string;
  port?: number;
  /** require Basic authentication with these credentials */
  username?: string;
  password?: string;
  /** `name → address` entries for squid's own hosts file (it asks no DNS server) */
  hosts?: Record<string, string>;
}

export interface Squid {
  address: string;
  port: number;
  /** access log so far: `<client> <method> <uri> <status> <user>` per line */
  accessLog(): Promise<string>;
  stop(): Promise<void>;
}

export const BASIC_NCSA_AUTH = '/usr/lib/squid/basic_ncsa_auth';
const SQUID_USER = 'proxy'; // Debian's --with-default-user; squid refuses to run as root

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** squid.conf for one lab proxy; every path is inside `dir`. */
export function squidConfig(opts: { dir: string; address: string; port: number; htpasswd?: string }): string {
  const d = (name: string) => join(opts.dir, name);
  const auth = opts.htpasswd
    ? [
        `auth_param basic program ${BASIC_NCSA_AUTH} ${opts.htpasswd}`,
        'auth_param basic children 2',
        'auth_param basic realm detour-lab',
        'acl authenticated proxy_auth REQUIRED',
        'http_access deny !authenticated',
      ]
    : [];
  return `${[
    `http_port ${hostPort(opts.address, opts.port)}`,
    // connections to targets leave from the proxy's own address, so targets can tell they came through it
    `tcp_outgoing_address ${opts.address}`,
    `visible_hostname detour-lab-squid`,
    `pid_filename ${d('squid.pid')}`,
    `cache_log ${d('cache.log')}`,
    'logformat lab %>a %rm %ru %>Hs %un',
    `access_log stdio:${d('access.log')} lab`,
    'cache_store_log none',
    `coredump_dir ${opts.dir}`,
    'cache deny all',
    'cache_mem 8 MB',
    'memory_cache_shared off',
    'netdb_filename none',
    'pinger_enable off',
    'icp_port 0',
    'htcp_port 0',
    `hosts_file ${d('hosts')}`,
    // names not in the hosts file fail at once instead of querying the host's resolvers
    'dns_nameservers 127.0.0.1',
    'shutdown_lifetime 0 seconds',
    ...auth,
    // CONNECT to any port: the lab's TCP destinations use arbitrary ports
    'http_access allow all',
  ].join('\n')}\n`;
}

export async function startSquid(lab: Lab, opts: SquidOptions = {}): Promise<Squid> {
  const ns = opts.ns ?? 'net';
  const address = opts.address ?? lab.addr.server2V4;
  const port = opts.port ?? 3128;
  const dir = join(lab.dir, `squid-${port}`);
  mkdirSync(dir, { recursive: true });
  // squid drops to the proxy user for its helpers and logs: it must be able to pass through lab.dir.
  chmodSync(lab.dir, statSync(lab.dir).mode | 0o011);
  let htpasswd: string | undefined;
  if (opts.username !== undefined) {
    const hashed = await lab.run(ns, ['openssl', 'passwd', '-apr1', '-stdin'], {
      input: `${opts.password ?? ''}\n`,
    });
    htpasswd = join(dir, 'htpasswd');
    writeFileSync(htpasswd, `${opts.username}:${hashed.stdout.trim()}\n`);
  }
  const hosts = Object.entries(opts.hosts ?? {}).map(([name, addr]) => `${addr} ${name}`);
  writeFileSync(join(dir, 'hosts'), `127.0.0.1 localhost\n${hosts.join('\n')}\n`);
  writeFileSync(join(dir, 'access.log'), '');
  const conf = join(dir, 'squid.conf');
  writeFileSync(conf, squidConfig({ dir, address, port, ...(htpasswd ? { htpasswd } : {}) }));
  const { uid, gid } = userIds(SQUID_USER);
  for (const f of ['', 'access.log', 'hosts', ...(htpasswd ? ['htpasswd'] : [])])
    chownSync(join(dir, f), uid, gid);

  const bg = lab.spawn(ns, ['squid', '-N', '-f', conf], { logFile: join(dir, 'squid.out') });
  await waitListening(lab, ns, hostPort(address, port), bg, 'squid', () => readTail(join(dir, 'cache.log')));
  return {
    address,
    port,
    accessLog: async () => readFileSync(join(dir, 'access.log'), 'utf8'),
    stop: () => bg.stop(),
  };
}

/** uid/gid of a system user, from /etc/passwd. */
export function userIds(name: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`lab: no user "${name}" in /etc/passwd (is the package installed?)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

/** Waits until `pid` (or one of its children) listens on host:port inside the namespace. */
export async function waitListening(
  lab: Lab,
  ns: LabNs,
  hp: string,
  bg: { pid: number; exited: Promise<number | null>; output(): string; stop(): Promise<void> },
  what: string,
  log: () => string,
): Promise<void> {
  let exited = false;
  void bg.exited.then(() => (exited = true));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited)
      throw new Error(`${what} exited during start-up: ${bg.output().trim() || '(no output)'}\n${log()}`);
    const ss = (await lab.run(ns, ['ss', '-Hltn'])).stdout;
    if (ss.split('\n').some((l) => l.split(/\s+/)[3] === hp)) return;
    if (Date.now() > deadline) {
      await bg.stop();
      throw new Error(`${what} is not listening on ${hp} after 15 s: ${bg.output().trim()}\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
