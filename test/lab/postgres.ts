// A real PostgreSQL server (Debian's postgresql 15) in a lab namespace: initdb into the lab's temp dir
// as the `postgres` system user, listening on the namespace's server address(es) with password
// authentication (scram-sha-256, PostgreSQL 15's default) for a known password. Stopped by stop() or
// with the lab (its process is one of the lab's background processes; its files are in lab.dir).
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './exec.js';
import type { Background, Lab } from './lab.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  /** the address clients connect to (IPv4) */
  host: string;
  /** all listen addresses */
  addresses: string[];
  port: number;
  user: string;
  password: string;
  database: string;
  /** postgresql://user:password@host:port/database */
  url: string;
  dataDir: string;
  process: Background;
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** default 5432 */
  port?: number;
  /** password of the `postgres` superuser; default 'lab-pg-password' */
  password?: string;
  /** 'trust' accepts anyone without a password; default 'scram-sha-256' */
  auth?: 'scram-sha-256' | 'md5' | 'trust';
}

async function idOf(flag: '-u' | '-g', user: string): Promise<number> {
  return Number((await runCommand(['id', flag, user])).stdout.trim());
}

let counter = 0;

/** Starts PostgreSQL in `ns` ('onprem' by default) on that namespace's server addresses. */
export async function startPostgres(
  lab: Lab,
  ns: 'onprem' | 'net' = 'onprem',
  opts: PostgresOptions = {},
): Promise<PostgresServer> {
  const port = opts.port ?? 5432;
  const password = opts.password ?? 'lab-pg-password';
  const auth = opts.auth ?? 'scram-sha-256';
  const addresses =
    ns === 'onprem'
      ? [lab.addr.onpremV4, ...(lab.ipv6 ? [lab.addr.onpremV6] : [])]
      : [lab.addr.serverV4, ...(lab.ipv6 ? [lab.addr.serverV6] : [])];
  const uid = await idOf('-u', 'postgres');
  const gid = await idOf('-g', 'postgres');
  const asPostgres = ['setpriv', '--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--'];

  // The lab dir is root's (0700); postgres needs to pass through it to its own directory.
  chmodSync(lab.dir, 0o711);
  const base = join(lab.dir, `postgres-${ns}-${port}-${counter++}`);
  const dataDir = join(base, 'data');
  mkdirSync(base, { mode: 0o700 });
  chownSync(base, uid, gid);
  const pwFile = join(base, 'pwfile');
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  chownSync(pwFile, uid, gid);

  await lab.run(
    ns,
    [
      ...asPostgres,
      join(PG_BIN, 'initdb'),
      '-D',
      dataDir,
      '-U',
      'postgres',
      `--pwfile=${pwFile}`,
      `--auth-host=${auth}`,
      '--auth-local=trust',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ],
    { timeoutMs: 120_000 },
  );
  // initdb's pg_hba.conf admits loopback only; the lab's clients come from other addresses.
  const hba = ['local all all trust', `host all all 0.0.0.0/0 ${auth}`, `host all all ::/0 ${auth}`];
  writeFileSync(join(dataDir, 'pg_hba.conf'), `${hba.join('\n')}\n`);
  chownSync(join(dataDir, 'pg_hba.conf'), uid, gid);

  const proc = lab.spawn(
    ns,
    [
      ...asPostgres,
      join(PG_BIN, 'postgres'),
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      `listen_addresses=${addresses.join(',')}`,
      '-c',
      `unix_socket_directories=${base}`,
      '-c',
      'fsync=off',
      '-c',
      'logging_collector=off',
    ],
    { logFile: join(base, 'postgres.log') },
  );
  await proc.waitFor(/database system is ready to accept connections/, 60_000);
  const host = addresses[0]!;
  let stopped: Promise<void> | undefined;
  return {
    host,
    addresses,
    port,
    user: 'postgres',
    password,
    database: 'postgres',
    url: `postgresql://postgres:${encodeURIComponent(password)}@${host}:${port}/postgres`,
    dataDir,
    process: proc,
    stop: () =>
      (stopped ??= (async () => {
        // SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for clients to leave).
        try {
          process.kill(proc.pid, 'SIGINT');
        } catch {
          // already gone
        }
        const t = setTimeout(() => void proc.stop(), 10_000);
        await proc.exited;
        clearTimeout(t);
      })()),
  };
}
