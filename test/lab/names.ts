// The lab's naming scheme. Everything a lab creates carries its id `dtlab-<pid>-<4 hex>`, with <pid>
// the process that created it, so leftovers of a killed run can be recognised (and only those).
import { randomBytes } from 'node:crypto';

export interface LabNames {
  id: string;
  /** Namespace names. */
  app: string;
  net: string;
  /** The optional on-premise namespace (createLab({ onprem: true })). */
  onprem: string;
  /** Interface names (at most 15 characters; they only exist inside the lab's namespaces). */
  vethApp: string;
  vethNet: string;
  /** The onprem–net veth pair: the end in onprem, the end in net. */
  vethOnprem: string;
  vethNetOnprem: string;
}

const ID_RE = /^dtlab-(\d+)-([0-9a-f]{4})$/;
const NS_RE = /^(dtlab-\d+-[0-9a-f]{4})-(app|net|onprem)$/;

export function labNames(pid: number = process.pid, hex: string = randomBytes(2).toString('hex')): LabNames {
  const id = `dtlab-${pid}-${hex}`;
  return {
    id,
    app: `${id}-app`,
    net: `${id}-net`,
    onprem: `${id}-onprem`,
    vethApp: `dt${hex}a`,
    vethNet: `dt${hex}n`,
    vethOnprem: `dt${hex}o`,
    vethNetOnprem: `dt${hex}p`,
  };
}

/** The creating pid of a lab id, or undefined when the name is not one of ours. */
export function pidOfLabId(id: string): number | undefined {
  const m = ID_RE.exec(id);
  return m ? Number(m[1]) : undefined;
}

/** The lab id of one of our namespace names, or undefined when the name is not one of ours. */
export function labIdOfNamespace(ns: string): string | undefined {
  return NS_RE.exec(ns)?.[1];
}

/** The lab id a temp or /etc/netns entry belongs to: `<id>` or `<id>-<anything>`. */
export function labIdOfEntry(name: string): string | undefined {
  const m = /^(dtlab-\d+-[0-9a-f]{4})(?:-.*)?$/.exec(name);
  return m?.[1];
}
