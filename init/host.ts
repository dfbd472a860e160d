// Facts about the host (really: the current network namespace) that the rules depend on.
// Thin shell around /proc, resolv.conf, getent and `ip`.
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { execa } from 'execa';
import { UsageError } from './errors.js';

export function ipv6Enabled(): boolean {
  if (!existsSync('/proc/net/if_inet6')) return false;
  try {
    return readFileSync('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8').trim() === '0';
  } catch {
    return false;
  }
}

/** nameserver lines of a resolv.conf; a missing file is an error only when DNS capture needs it. */
export function resolvConfNameservers(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read ${path} for --redirect-dns: ${(error as NodeJS.ErrnoException).code}; use --resolv-conf-path or --redirect-all-dns-traffic`,
    );
  }
  return parseNameservers(text);
}

export function parseNameservers(text: string): string[] {
  const servers: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const address = m?.[1]?.split('%')[0];
    if (address && isIP(address) && !servers.includes(address)) servers.push(address);
  }
  return servers;
}

export async function resolveUid(user: string): Promise<number> {
  if (/^\d+$/.test(user)) return Number(user);
  const result = await execa('getent', ['passwd', user], { reject: false });
  const uid = result.exitCode === 0 ? Number(result.stdout.split(':')[2]) : NaN;
  if (!Number.isInteger(uid)) {
    throw new UsageError(`--dataplane-user: no such user "${user}" (give a UID or an existing user name)`);
  }
  return uid;
}

/** CAP_NET_ADMIN in the effective set: what changing rules and addresses needs. */
export function hasNetAdmin(): boolean {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1];
    return capEff !== undefined && (BigInt(`0x${capEff}`) & (1n << 12n)) !== 0n;
  } catch {
    return process.getuid?.() === 0;
  }
}

export async function loopbackHasAddress(address: string): Promise<boolean> {
  const result = await execa('ip', ['-6', '-o', 'addr', 'show', 'dev', 'lo'], { reject: false });
  return result.exitCode === 0 && result.stdout.split('\n').some((l) => l.includes(` inet6 ${address}/`));
}

export async function setLoopbackAddress(cidr: string, present: boolean): Promise<void> {
  const result = await execa('ip', ['-6', 'addr', present ? 'add' : 'del', cidr, 'dev', 'lo'], {
    reject: false,
  });
  if (result.exitCode !== 0) {
    throw new Error(`ip -6 addr ${present ? 'add' : 'del'} ${cidr} dev lo failed: ${result.stderr.trim()}`);
  }
}
