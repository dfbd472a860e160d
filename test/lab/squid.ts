// A real squid as a corporate HTTP proxy for tests: its own config file (no daemon mode, no cache, logs
// in its directory), optional Basic authentication through squid's basic_ncsa_auth helper and an
// htpasswd file made with `openssl passwd -apr1`. Runs on loopback (unit tests) or in a lab namespace
// (e2e) through the `spawn` given. Stopped by PID.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Background } from './exec.js';

export interface SquidOptions {
  /**
   * a directory squid may write (made world-writable: squid drops to its own user); its parents must
   * be traversable by that user
   */
  dir: string;
  /** listen address and port, e.g. 127.0.0.1 and a free high port */
  address: string;
  port: number;
  /** Basic authentication: only these users get through (407 otherwise) */
  users?: { username: string; password: string }[];
}

export interface Squid {
  port: number;
  /** squid's access log so far (`squid` format: ... METHOD URL user HIER/peer type) */
  accessLog(): string;
  stop(): Promise<void>;
}

const HELPER = '/usr/lib/squid/basic_ncsa_auth';

export function squidConfig(opts: SquidOptions): string {
  const d = (name: string): string => join(opts.dir, name);
  const listen = opts.address.includes(':') ? `[${opts.address}]:${opts.port}` : `${opts.address}:${opts.port}`;
  const auth = opts.users
    ? [
        `auth_param basic program ${HELPER} ${d('htpasswd')}`,
        'auth_param basic realm detour-test',
        'auth_param basic children 2',
        'acl authenticated proxy_auth REQUIRED',
        'http_access allow authenticated',
      ]
    : ['http_access allow all'];
  return [
    `http_port ${listen}`,
    ...auth,
    'http_access deny all',
    // no caching at all: every request reaches the target
    'cache deny all',
    'cache_mem 0 MB',
    `pid_filename ${d('squid.pid')}`,
    `access_log stdio:${d('access.log')} squid`,
    `cache_log ${d('cache.log')}`,
    `coredump_dir ${opts.dir}`,
    'shutdown_lifetime 0 seconds',
    // tests run offline: no Via/X-Forwarded-For surprises and quick failures
    'via off',
    'forwarded_for delete',
    'connect_timeout 5 seconds',
    'logfile_rotate 0',
    '',
  ].join('\n');
}

function htpasswdLine(username: string, password: string): string {
  const hash = execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: `${password}\n` })
    .toString()
    .trim();
  return `${username}:${hash}`;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Writes the config (and htpasswd), starts `squid -N -f <conf>` with `spawn` and waits until the port
 * accepts connections (`probe`: default a loopback connect; in a namespace pass one that runs there).
 */
export async function startSquid(
  opts: SquidOptions,
  spawn: (argv: string[], logFile: string) => Background,
  probe: () => Promise<boolean> = () => canConnect(opts.address, opts.port),
): Promise<Squid> {
  mkdirSync(opts.dir, { recursive: true });
  chmodSync(opts.dir, 0o777);
  if (opts.users)
    writeFileSync(
      join(opts.dir, 'htpasswd'),
      opts.users.map((u) => htpasswdLine(u.username, u.password)).join('\n') + '\n',
      { mode: 0o644 },
    );
  const conf = join(opts.dir, 'squid.conf');
  writeFileSync(conf, squidConfig(opts), { mode: 0o644 });
  for (const f of ['access.log', 'cache.log']) {
    writeFileSync(join(opts.dir, f), '');
    chmodSync(join(opts.dir, f), 0o666);
  }
  const bg = spawn(['squid', '-N', '-f', conf], join(opts.dir, 'squid.out'));
  let exited = false;
  void bg.exited.then(() => (exited = true));
  const deadline = Date.now() + 15_000;
  while (!(await probe())) {
    const log = (): string => `${bg.output().trim()}\n${readFileSync(join(opts.dir, 'cache.log'), 'utf8').slice(-2000)}`;
    if (exited) throw new Error(`squid exited during start-up: ${log()}`);
    if (Date.now() > deadline) {
      await bg.stop();
      throw new Error(`squid is not listening on ${opts.address}:${opts.port} after 15 s: ${log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port: opts.port,
    accessLog: () => readFileSync(join(opts.dir, 'access.log'), 'utf8'),
    stop: () => bg.stop(),
  };
}
