// The iptables backends (legacy and nft flavours): one `iptables-restore --noflush` transaction per
// table and IP family, each undone again if a later one fails, then verified against iptables-save.
import { ApplyError } from '../errors.js';
import {
  desiredTables,
  fingerprint,
  hasDetourState,
  tableHasDetourState,
  parseSave,
  reconcileText,
  sameState,
  type TableState,
} from '../rules/iptables.js';
import { ADDED_LOOPBACK_MARK, type Family, type Rule, type Table } from '../rules/model.js';
import { run, runWithRetries, which, type RunContext } from './run.js';
import type { Backend, BackendName, Plan, Step } from './types.js';

type Flavour = 'legacy' | 'nft';

interface Tools {
  save: string;
  restore: string;
}

const FAMILY_LABEL: Record<Family, string> = { 4: 'IPv4', 6: 'IPv6' };

async function findTools(flavour: Flavour, family: Family): Promise<Tools | undefined> {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  const save = await which(`${base}-${flavour}-save`);
  const restore = await which(`${base}-${flavour}-restore`);
  if (save && restore) return { save, restore };
  // Distributions without the alternatives: plain iptables-save is one flavour or the other.
  const plainSave = await which(`${base}-save`);
  const plainRestore = await which(`${base}-restore`);
  if (!plainSave || !plainRestore) return undefined;
  const version = await run(
    { verbose: false, maxRetries: 0, sleepBetweenRetriesMs: 0, log: () => {} },
    plainSave,
    ['--version'],
  );
  const isNft = /nf_tables/.test(version.stdout + version.stderr);
  return isNft === (flavour === 'nft') ? { save: plainSave, restore: plainRestore } : undefined;
}

const EMPTY: TableState = { ownChains: [], hookLines: [], chainLines: [] };

export class IptablesBackend implements Backend {
  readonly name: BackendName;

  constructor(
    private readonly flavour: Flavour,
    private readonly ctx: RunContext,
    private readonly waitSeconds: number,
  ) {
    this.name = `iptables-${flavour}`;
  }

  // Which binaries to use does not change during a run; looking them up spawns a shell each time.
  private readonly toolsByFamily = new Map<Family, Promise<Tools | undefined>>();

  private tools(family: Family): Promise<Tools | undefined> {
    let tools = this.toolsByFamily.get(family);
    if (!tools) this.toolsByFamily.set(family, (tools = findTools(this.flavour, family)));
    return tools;
  }

  async available(): Promise<boolean> {
    const tools = await this.tools(4);
    if (!tools) return false;
    return (
      this.ctx.unprivileged || (await run({ ...this.ctx, verbose: false }, tools.save, [])).exitCode === 0
    );
  }

  private async save(family: Family): Promise<string | undefined> {
    const tools = await this.tools(family);
    if (!tools) return undefined;
    const result = await run({ ...this.ctx, verbose: false }, tools.save, []);
    if (result.exitCode !== 0 && this.ctx.unprivileged) return '';
    return result.exitCode === 0 ? result.stdout : undefined;
  }

  /** ip6tables of this flavour exists and can read its rules */
  async ipv6Works(): Promise<boolean> {
    return (await this.save(6)) !== undefined;
  }

  async hasAnyRules(): Promise<boolean> {
    for (const family of [4, 6] as const) {
      const text = await this.save(family);
      if (text && /^(-A |:(?!(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ))/m.test(text)) return true;
    }
    return false;
  }

  async hasDetourState(): Promise<boolean> {
    for (const family of [4, 6] as const) {
      const text = await this.save(family);
      if (text && hasDetourState(parseSave(text))) return true;
    }
    return false;
  }

  async recordsAddedLoopback(): Promise<boolean> {
    return (await this.save(6))?.includes(ADDED_LOOPBACK_MARK) ?? false;
  }

  private restoreArgs(): string[] {
    return ['--noflush', ...(this.waitSeconds > 0 ? ['-w', `${this.waitSeconds}`] : [])];
  }

  private async restore(tools: Tools, text: string, what: string): Promise<void> {
    const result = await runWithRetries(this.ctx, tools.restore, this.restoreArgs(), text);
    if (result.exitCode !== 0) {
      throw new ApplyError(
        `${what}: ${tools.restore} failed: ${result.stderr.trim() || `exit ${result.exitCode}`}`,
      );
    }
  }

  /** desired: undefined → remove everything detour added in this family */
  private async planFamily(
    family: Family,
    rules: Rule[] | undefined,
    plan: Plan,
    checks: (() => Promise<string | undefined>)[],
  ) {
    const tools = await this.tools(family);
    const text = await this.save(family);
    if (!tools || text === undefined) {
      if (family === 4 && rules)
        throw new ApplyError(`${this.name}: cannot read the IPv4 rules (iptables-save failed)`);
      return;
    }
    const current = parseSave(text);
    const desired = rules ? desiredTables(rules, family) : new Map<Table, TableState>();
    const tables = new Set<string>([
      ...desired.keys(),
      ...[...current.entries()].filter(([, state]) => tableHasDetourState(state)).map(([t]) => t),
    ]);
    for (const table of tables) {
      if (sameState(current.get(table), desired.get(table as Table))) continue;
      const have = new Map([[table, current.get(table) ?? EMPTY]]);
      const want = new Map([[table as Table, desired.get(table as Table) ?? EMPTY]]);
      const script = reconcileText(have, want);
      if (!script) continue;
      const what = `${this.name} ${FAMILY_LABEL[family]} table ${table}`;
      plan.scripts.push({
        label: `${tools.restore} ${this.restoreArgs().join(' ')}  # ${FAMILY_LABEL[family]}, table ${table}`,
        text: script,
      });
      const step: Step = {
        describe: what,
        apply: () => this.restore(tools, script, what),
        rollback: async () => {
          const now = parseSave((await this.save(family)) ?? '');
          const undo = reconcileText(
            new Map([[table, now.get(table) ?? EMPTY]]),
            new Map([[table as Table, current.get(table) ?? EMPTY]]),
          );
          if (undo) await this.restore(tools, undo, `rolling back ${what}`);
        },
      };
      plan.steps.push(step);
    }
    checks.push(async () => {
      const after = parseSave((await this.save(family)) ?? '');
      const expected = fingerprint(desired);
      const actual = fingerprint(after);
      if (expected.join('\n') === actual.join('\n')) return undefined;
      const missing = expected.filter((l) => !actual.includes(l));
      const extra = actual.filter((l) => !expected.includes(l));
      return `${this.name} ${FAMILY_LABEL[family]}: installed rules differ from the plan (missing: ${missing.join('; ') || 'none'}; unexpected: ${extra.join('; ') || 'none'}; or out of order)`;
    });
  }

  private async plan(rules: Rule[] | undefined, ipv6: boolean): Promise<Plan> {
    const checks: (() => Promise<string | undefined>)[] = [];
    const plan: Plan = {
      backend: this.name,
      scripts: [],
      steps: [],
      verify: async () => (await Promise.all(checks.map((c) => c()))).find((p) => p !== undefined),
    };
    await this.planFamily(4, rules, plan, checks);
    // IPv6: install where the host has it; always clean up what an earlier dual-stack install left.
    await this.planFamily(6, rules && ipv6 ? rules : undefined, plan, checks);
    return plan;
  }

  planInstall(rules: Rule[], ipv6: boolean): Promise<Plan> {
    return this.plan(rules, ipv6);
  }

  planRemove(): Promise<Plan> {
    return this.plan(undefined, false);
  }
}
