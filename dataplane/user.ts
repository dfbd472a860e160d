// --user: resolve a user name or uid, then drop root to it before any listener exists.
import { ConfigError } from './config.js';

export interface UserIdentity {
  uid: number;
  gid: number;
  name?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2] ?? '') && /^\d+$/.test(f[3] ?? ''))
    .map((f) => ({ name: f[0] ?? '', uid: Number(f[2]), gid: Number(f[3]) }));
}

/** A name must exist in passwd; a numeric uid need not (its gid is then the same number, like setpriv). */
export function resolveUser(spec: string, passwd: string): UserIdentity {
  const entries = parsePasswd(passwd);
  if (/^\d+$/.test(spec)) {
    const uid = Number(spec);
    const entry = entries.find((e) => e.uid === uid);
    return entry ? { uid, gid: entry.gid, name: entry.name } : { uid, gid: uid };
  }
  const entry = entries.find((e) => e.name === spec);
  if (!entry) throw new ConfigError(`--user: no such user "${spec}"`);
  return { uid: entry.uid, gid: entry.gid, name: entry.name };
}

interface ProcessIds {
  getuid(): number;
  setgroups(groups: number[]): void;
  setgid(id: number): void;
  setuid(id: number): void;
}

/** Groups first, then gid, then uid: after setuid we could no longer change the others. */
export function dropPrivileges(
  user: UserIdentity,
  proc: ProcessIds = process as unknown as ProcessIds,
): void {
  const current = proc.getuid();
  if (current === user.uid) return;
  if (current !== 0) {
    throw new ConfigError(`--user ${user.name ?? user.uid}: cannot switch user: not running as root`);
  }
  proc.setgroups([]);
  proc.setgid(user.gid);
  proc.setuid(user.uid);
}
