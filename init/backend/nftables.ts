// The native nftables backend: everything lives in `table inet detour`, replaced or deleted in one
// `nft -f` transaction, so it never touches anyone else's tables.
import { ApplyError } from '../errors.js';
import { ADDED_LOOPBACK_MARK, type Rule } from '../rules/model.js';
import {
  NFT_TABLE,
  desiredFingerprint,
  installedFingerprint,
  orderByChain,
  replaceTableScript,
  tableMark,
} from '../rules/nftables.js';
import { run, runWithRetries, which, type RunContext } from './run.js';
import type { Backend, Plan } from './types.js';

export class NftablesBackend implements Backend {
  readonly name = 'nftables' as const;

  constructor(private readonly ctx: RunContext) {}

  private nftFound: Promise<boolean> | undefined;

  private hasNft(): Promise<boolean> {
    return (this.nftFound ??= which('nft').then((path) => path !== undefined));
  }

  async available(): Promise<boolean> {
    if (!(await this.hasNft())) return false;
    return (
      this.ctx.unprivileged ||
      (await run({ ...this.ctx, verbose: false }, 'nft', ['list', 'tables'])).exitCode === 0
    );
  }

  async hasAnyRules(): Promise<boolean> {
    const result = await run({ ...this.ctx, verbose: false }, 'nft', ['list', 'tables']);
    return result.exitCode === 0 && result.stdout.trim().length > 0;
  }

  private async current(): Promise<string | undefined> {
    if (!(await this.hasNft())) return undefined;
    const result = await run({ ...this.ctx, verbose: false }, 'nft', ['list', 'table', 'inet', NFT_TABLE]);
    return result.exitCode === 0 ? result.stdout : undefined;
  }

  async hasDetourState(): Promise<boolean> {
    return (await this.current()) !== undefined;
  }

  async recordsAddedLoopback(): Promise<boolean> {
    return (await this.current())?.includes(ADDED_LOOPBACK_MARK) ?? false;
  }

  private async nft(script: string, what: string): Promise<void> {
    const result = await runWithRetries(this.ctx, 'nft', ['-f', '-'], script);
    if (result.exitCode !== 0) throw new ApplyError(`${what}: nft -f failed: ${result.stderr.trim()}`);
  }

  private async plan(script: string | undefined, expected: string[]): Promise<Plan> {
    const previous = await this.current();
    const restorePrevious = previous
      ? `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${previous}`
      : `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n`;
    return {
      backend: this.name,
      scripts: script ? [{ label: 'nft -f -', text: script }] : [],
      steps: script
        ? [
            {
              describe: `nftables table inet ${NFT_TABLE}`,
              apply: () => this.nft(script, `nftables table inet ${NFT_TABLE}`),
              rollback: () => this.nft(restorePrevious, `rolling back nftables table inet ${NFT_TABLE}`),
            },
          ]
        : [],
      verify: async () => {
        const listed = await run({ ...this.ctx, verbose: false }, 'nft', [
          '-j',
          'list',
          'table',
          'inet',
          NFT_TABLE,
        ]);
        const actual = listed.exitCode === 0 ? installedFingerprint(listed.stdout, expected) : [];
        if (actual.join('\n') === expected.join('\n')) return undefined;
        return `nftables: table inet ${NFT_TABLE} differs from the plan (expected ${expected.length} rules, found ${actual.length})`;
      },
    };
  }

  async planInstall(rules: Rule[], ipv6: boolean): Promise<Plan> {
    const expected = desiredFingerprint(rules, ipv6);
    const script = replaceTableScript(rules, ipv6);
    const current = await this.current();
    const unchanged = current !== undefined && tableMark(current) === tableMark(script);
    return this.plan(unchanged ? undefined : script, orderByChain(expected, expected));
  }

  async planRemove(): Promise<Plan> {
    const exists = (await this.current()) !== undefined;
    return this.plan(exists ? `delete table inet ${NFT_TABLE}\n` : undefined, []);
  }
}
