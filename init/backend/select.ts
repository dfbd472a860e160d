// Which backend to use. `auto`: the one that already holds detour's rules; else the iptables flavour
// that already has anyone's rules (legacy only if it has rules and nft has none); else iptables-nft,
// else iptables-legacy, else native nftables.
import { UsageError } from '../errors.js';
import { IptablesBackend } from './iptables.js';
import { NftablesBackend } from './nftables.js';
import type { RunContext } from './run.js';
import type { Backend, BackendName } from './types.js';

export function allBackends(ctx: RunContext, waitSeconds: number): Backend[] {
  return [
    new IptablesBackend('legacy', ctx, waitSeconds),
    new IptablesBackend('nft', ctx, waitSeconds),
    new NftablesBackend(ctx),
  ];
}

const MISSING_HINT: Record<BackendName, string> = {
  'iptables-legacy':
    'iptables-legacy-restore/-save not found or not working: install the iptables package, or choose --backend nftables',
  'iptables-nft':
    'iptables-nft-restore/-save not found or not working: install the iptables package, or choose --backend nftables',
  nftables: 'nft not found or not working: install the nftables package, or choose an iptables backend',
};

export async function selectBackend(requested: string, backends: Backend[]): Promise<Backend> {
  if (requested !== 'auto') {
    const backend = backends.find((b) => b.name === requested)!;
    if (!(await backend.available()))
      throw new UsageError(`--backend ${requested}: ${MISSING_HINT[backend.name]}`);
    return backend;
  }
  const available: Backend[] = [];
  for (const backend of backends) if (await backend.available()) available.push(backend);
  for (const backend of available) if (await backend.hasDetourState()) return backend;
  const byName = (name: BackendName) => available.find((b) => b.name === name);
  const legacy = byName('iptables-legacy');
  const nft = byName('iptables-nft');
  if (legacy && (await legacy.hasAnyRules()) && !(nft && (await nft.hasAnyRules()))) return legacy;
  const chosen = nft ?? legacy ?? byName('nftables');
  if (!chosen) {
    throw new UsageError(
      'no firewall tool found: neither iptables-restore nor nft works here; install the iptables or nftables package',
    );
  }
  return chosen;
}
