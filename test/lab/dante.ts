// A real Dante SOCKS5 server (danted) as the lab's corporate SOCKS proxy. With users, it offers only
// the username method (RFC 1929), which Dante checks against the system's passwd/shadow: danted then
// runs in a mount namespace of its own (`unshare --mount`) where passwd, shadow and group are
// bind-mounted files from the lab directory holding the test users — the host's /etc is never touched.
// Without users it offers only "no authentication".
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabNs } from './lab.js';
import { waitListening } from './squid.js';

export interface DanteUser {
  username: string;
  password: string;
}

export interface DanteOptions {
  ns?: LabNs;
  /** listen address, also the source of its outgoing connections (default the lab's server2V4) */
  address?: string;
  port?: number;
  /** username/password users (method 0x02); none: method 0x00 */
  users?: DanteUser[];
}

export interface Dante {
  address: string;
  port: number;
  /** danted's log so far (stderr) */
  output(): string;
  stop(): Promise<void>;
}

/** danted.conf: one internal address, CONNECT anywhere, the given method. */
export function danteConfig(opts: { address: string; port: number; method: 'username' | 'none' }): string {
  return `${[
    'logoutput: stderr',
    `internal: ${opts.address} port = ${opts.port}`,
    `external: ${opts.address}`,
    'clientmethod: none',
    `socksmethod: ${opts.method}`,
    'user.privileged: root',
    'user.unprivileged: nobody',
    'client pass {',
    '  from: 0.0.0.0/0 to: 0.0.0.0/0',
    '  log: error',
    '}',
    'socks pass {',
    '  from: 0.0.0.0/0 to: 0.0.0.0/0',
    '  command: connect',
    '  log: connect error',
    '}',
  ].join('\n')}\n`;
}

/** passwd/shadow/group files with root, nobody and the test users (uids from 20001). */
export function accountFiles(users: { username: string; hash: string }[]): {
  passwd: string;
  shadow: string;
  group: string;
} {
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
    ...users.map((u, i) => `${u.username}:x:${20001 + i}:65534::/nonexistent:/usr/sbin/nologin`),
  ];
  const shadow = [
    'root:*:19000:0:99999:7:::',
    'nobody:*:19000:0:99999:7:::',
    ...users.map((u) => `${u.username}:${u.hash}:19000:0:99999:7:::`),
  ];
  const group = ['root:x:0:', 'nogroup:x:65534:'];
  return {
    passwd: passwd.join('\n') + '\n',
    shadow: shadow.join('\n') + '\n',
    group: group.join('\n') + '\n',
  };
}

const NAME = /^[a-z_][a-z0-9_-]{0,30}$/;

export async function startDante(lab: Lab, opts: DanteOptions = {}): Promise<Dante> {
  const ns = opts.ns ?? 'net';
  const address = opts.address ?? lab.addr.server2V4;
  const port = opts.port ?? 1080;
  const users = opts.users ?? [];
  const dir = join(lab.dir, `dante-${port}`);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'danted.conf');
  writeFileSync(conf, danteConfig({ address, port, method: users.length ? 'username' : 'none' }));
  let argv = ['danted', '-f', conf];
  if (users.length) {
    const hashed: { username: string; hash: string }[] = [];
    for (const u of users) {
      if (!NAME.test(u.username)) throw new Error(`startDante: user name "${u.username}" must match ${NAME}`);
      const r = await lab.run(ns, ['openssl', 'passwd', '-6', '-stdin'], { input: `${u.password}\n` });
      hashed.push({ username: u.username, hash: r.stdout.trim() });
    }
    const files = accountFiles(hashed);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o600 });
    argv = [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/shadow && mount --bind "$3" /etc/group && exec danted -f "$4"',
      'sh',
      join(dir, 'passwd'),
      join(dir, 'shadow'),
      join(dir, 'group'),
      conf,
    ];
  }
  const bg = lab.spawn(ns, argv, { logFile: join(dir, 'danted.out') });
  const hp = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  await waitListening(lab, ns, hp, bg, 'danted', () => '');
  return { address, port, output: () => bg.output(), stop: () => bg.stop() };
}
