// The rules detour installs, independent of the backend that renders them (iptables restore text
// or one nftables table). Every rule carries its `detour/...` comment, which also identifies it when
// the installed state is verified.
import type { PortRange, Protocol } from '../config/values.js';

export type Table = 'nat' | 'raw' | 'mangle';
export type Family = 4 | 6;

export const CHAINS = {
  inbound: 'DETOUR_INBOUND',
  inboundRedirect: 'DETOUR_INBOUND_REDIRECT',
  outbound: 'DETOUR_OUTBOUND',
  outboundRedirect: 'DETOUR_OUTBOUND_REDIRECT',
} as const;

export type OwnChain = (typeof CHAINS)[keyof typeof CHAINS];
export type BuiltinChain = 'PREROUTING' | 'OUTPUT';

export interface Match {
  /** source / destination address or CIDR; its family decides which IP family the rule is for */
  source?: string;
  destination?: string;
  outInterface?: string;
  protocol?: Exclude<Protocol, 'all'>;
  destinationPort?: number;
  sourcePort?: number;
  /** several destination ports or ranges (multiport) */
  destinationPorts?: PortRange[];
  uidOwner?: { from: number; to: number };
  notUidOwner?: number;
  ctStateInvalid?: boolean;
}

export type Target =
  | { kind: 'jump'; chain: OwnChain }
  | { kind: 'return' }
  | { kind: 'redirect'; port: number }
  | { kind: 'ct-zone'; zone: number }
  | { kind: 'drop' }
  | { kind: 'log'; prefix: string; level: string };

export interface Rule {
  table: Table;
  chain: BuiltinChain | OwnChain;
  /** undefined: both families */
  family?: Family;
  match: Match;
  target: Target;
  comment: string;
}

/** Marker in a rule comment saying that install added the IPv6 inbound-passthrough address to lo. */
export const ADDED_LOOPBACK_MARK = 'detour added ::6/128 to lo';
export const INBOUND_PASSTHROUGH_V4 = '127.0.0.6';
export const INBOUND_PASSTHROUGH_V6 = '::6';

export function isOwnChain(chain: string): chain is OwnChain {
  return (Object.values(CHAINS) as string[]).includes(chain);
}
