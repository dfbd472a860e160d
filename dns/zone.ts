// The local zone: which query names are destination names, and what to answer for them. Pure.
//
// A destination name answers under every form an application may use for it: the bare name, the
// name with each search suffix of the original resolv.conf appended (a resolver appends them), and on
// Kubernetes <name>.<namespace>, <name>.<namespace>.svc and <name>.<namespace>.svc.<cluster domain>.
// Matching ignores ASCII case and a trailing dot. A bare name wins over a suffixed form of another.
//
// Answers: A and AAAA carry the name's VIPs (ANY carries both); a family that is switched off, and
// every other type (TXT, MX, SRV, CNAME, ...), gets NOERROR with no answer and an SOA in the
// authority section, so resolvers cache the "no data" for the TTL (RFC 2308) and do not fall back to
// the upstream, which could otherwise answer with a real address for the same name. Classes other
// than IN (and ANY) are not ours: forwarded.
import { CLASS_ANY, CLASS_IN, TYPE, lowerAscii } from './wire.js';
import type { Vip } from './vip.js';

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

export interface ZoneOptions {
  /** Destination names. */
  names: readonly string[];
  /** Search suffixes of the original resolv.conf (e.g. "ns1.svc.cluster.local"). */
  searchSuffixes?: readonly string[];
  /** On Kubernetes: the pod's namespace, which adds the Service-style forms. */
  kubernetesNamespace?: string;
  /** Default "cluster.local". */
  clusterDomain?: string;
}

export interface Zone {
  /** The destination name a query name stands for, or undefined. */
  match(queryName: string): string | undefined;
  /** The normalised destination names. */
  readonly names: readonly string[];
}

export interface ZoneQuestion {
  name: string;
  type: number;
  class: number;
}

export interface Families {
  ipv4: boolean;
  ipv6: boolean;
}

export type ZoneDecision =
  | { kind: 'answer'; destination: string; records: Array<{ type: 'A' | 'AAAA'; address: string }> }
  | { kind: 'nodata'; destination: string }
  | { kind: 'forward' };

/** Lower case, no leading or trailing dots. */
export function normalizeName(name: string): string {
  return lowerAscii(name.trim()).replace(/^\.+|\.+$/g, '');
}

export function createZone(opts: ZoneOptions): Zone {
  const names = [...new Set(opts.names.map(normalizeName).filter((n) => n !== ''))].sort();
  const suffixes = (opts.searchSuffixes ?? []).map(normalizeName).filter((s) => s !== '');
  if (opts.kubernetesNamespace !== undefined) {
    const ns = normalizeName(opts.kubernetesNamespace);
    const domain = normalizeName(opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN);
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(ns))
      throw new Error(`DNS zone: Kubernetes namespace "${opts.kubernetesNamespace}" is not a DNS label`);
    suffixes.push(ns, `${ns}.svc`, ...(domain ? [`${ns}.svc.${domain}`] : []));
  }
  const table = new Map<string, string>();
  for (const n of names) table.set(n, n);
  for (const s of suffixes) for (const n of names) if (!table.has(`${n}.${s}`)) table.set(`${n}.${s}`, n);
  return {
    names,
    match: (queryName) => table.get(normalizeName(queryName)),
  };
}

export function decide(
  zone: Zone,
  question: ZoneQuestion,
  vipFor: (name: string) => Vip,
  families: Families = { ipv4: true, ipv6: true },
): ZoneDecision {
  if (question.class !== CLASS_IN && question.class !== CLASS_ANY) return { kind: 'forward' };
  const destination = zone.match(question.name);
  if (destination === undefined) return { kind: 'forward' };
  const wantV4 = families.ipv4 && (question.type === TYPE.A || question.type === TYPE.ANY);
  const wantV6 = families.ipv6 && (question.type === TYPE.AAAA || question.type === TYPE.ANY);
  if (!wantV4 && !wantV6) return { kind: 'nodata', destination };
  const vip = vipFor(destination);
  const records: Array<{ type: 'A' | 'AAAA'; address: string }> = [];
  if (wantV4) records.push({ type: 'A', address: vip.ipv4 });
  if (wantV6) records.push({ type: 'AAAA', address: vip.ipv6 });
  return { kind: 'answer', destination, records };
}
