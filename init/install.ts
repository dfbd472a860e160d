// `detour install transparent-proxy` and `detour uninstall transparent-proxy`: gather facts,
// build the rules, and either print them (--dry-run) or apply them atomically with verification.
import type { TransparentProxyConfig } from './config/schema.js';
import { UsageError } from './errors.js';
import {
  hasNetAdmin,
  ipv6Enabled,
  loopbackHasAddress,
  resolvConfNameservers,
  resolveUid,
  setLoopbackAddress,
} from './host.js';
import { buildRules, type HostFacts } from './rules/build.js';
import { INBOUND_PASSTHROUGH_V6, type Rule } from './rules/model.js';
import { allBackends, selectBackend } from './backend/select.js';
import type { Backend, Plan, Step } from './backend/types.js';
import { applyAndVerify } from './transaction.js';
import { validateTransparentProxy, type OriginalDestinationReader } from './validate.js';
import type { RunContext } from './backend/run.js';
import { IptablesBackend } from './backend/iptables.js';

export interface Output {
  /** what the command prints on stdout (dry-run scripts, results) */
  out: (text: string) => void;
  /** progress and --verbose lines (stderr) */
  log: (line: string) => void;
}

const LOOPBACK_V6 = `${INBOUND_PASSTHROUGH_V6}/128`;

function runContext(config: TransparentProxyConfig, output: Output): RunContext {
  return {
    verbose: config.verbose,
    maxRetries: config.retry.maxRetries,
    sleepBetweenRetriesMs: config.retry.sleepBetweenRetries,
    log: output.log,
    unprivileged: !hasNetAdmin(),
  };
}

function requirePrivilege(config: TransparentProxyConfig, what: string): void {
  if (!config.dryRun && !hasNetAdmin()) {
    throw new UsageError(
      `${what} needs root (CAP_NET_ADMIN) to change rules; use --dry-run to print them instead`,
    );
  }
}

async function anyRecordsAddedLoopback(backends: Backend[]): Promise<boolean> {
  for (const backend of backends) if (await backend.recordsAddedLoopback()) return true;
  return false;
}

function loopbackStep(present: boolean): Step {
  return {
    describe: `${present ? 'adding' : 'removing'} ${LOOPBACK_V6} on lo`,
    apply: () => setLoopbackAddress(LOOPBACK_V6, present),
    rollback: () => setLoopbackAddress(LOOPBACK_V6, !present),
  };
}

function printPlan(plans: Plan[], loopback: Step[], output: Output): void {
  if (!hasNetAdmin())
    output.out('# not root: the current rules could not be read, so this is the plan from none\n');
  for (const plan of plans) {
    for (const script of plan.scripts) output.out(`# ${plan.backend}: ${script.label}\n${script.text}`);
  }
  for (const step of loopback) output.out(`# ${step.describe}\n`);
  if (plans.every((p) => p.scripts.length === 0) && loopback.length === 0)
    output.out('# nothing to change\n');
}

export interface InstallResult {
  backend: string;
  rules: Rule[];
  changed: boolean;
  validation?: string[];
}

export async function installTransparentProxy(
  config: TransparentProxyConfig,
  output: Output,
  read?: OriginalDestinationReader,
): Promise<InstallResult> {
  requirePrivilege(config, 'install');
  const dataplaneUid = await resolveUid(config.dataplaneUser);
  const dns = config.redirect.dns;
  const dnsServers = dns.enabled && !dns.captureAll ? resolvConfNameservers(dns.resolvConfPath) : [];
  if (dns.enabled && !dns.captureAll && dnsServers.length === 0) {
    throw new UsageError(
      `--redirect-dns: ${dns.resolvConfPath} lists no nameserver to capture; use --redirect-all-dns-traffic or --resolv-conf-path`,
    );
  }
  const ctx = runContext(config, output);
  const backends = allBackends(ctx, config.wait);
  const backend = await selectBackend(config.backend, backends);
  const ipv6 = config.ipFamilyMode === 'dualstack' && ipv6Enabled() && (await supportsIpv6(backend));

  const wantsLoopback = ipv6 && config.redirect.inbound.enabled;
  const loopbackPresent = ipv6Enabled() && (await loopbackHasAddress(INBOUND_PASSTHROUGH_V6));
  const addedEarlier = await anyRecordsAddedLoopback(backends);
  const facts: HostFacts = {
    ipv6,
    dataplaneUid,
    dnsServers,
    loopbackV6AddedByDetour: wantsLoopback && (!loopbackPresent || addedEarlier),
  };
  const rules = buildRules(config, facts);

  const plans = [await backend.planInstall(rules, ipv6)];
  for (const other of backends) {
    if (other.name !== backend.name && (await other.hasDetourState())) plans.push(await other.planRemove());
  }
  const loopback: Step[] = [];
  if (wantsLoopback && !loopbackPresent) loopback.push(loopbackStep(true));
  if (!wantsLoopback && loopbackPresent && addedEarlier) loopback.push(loopbackStep(false));

  const changed = plans.some((p) => p.steps.length > 0) || loopback.length > 0;
  if (config.dryRun) {
    printPlan(plans, loopback, output);
    return { backend: backend.name, rules, changed };
  }
  await applyAndVerify(plans, loopback, output.log);
  const result: InstallResult = { backend: backend.name, rules, changed };
  if (config.validate) {
    if (!read) throw new UsageError('--validate: no original-destination reader available');
    result.validation = await validateTransparentProxy(config, { ipv6, dataplaneUid, read });
  }
  return result;
}

async function supportsIpv6(backend: Backend): Promise<boolean> {
  if (!(backend instanceof IptablesBackend)) return true;
  return backend.ipv6Works();
}

export async function uninstallTransparentProxy(
  config: TransparentProxyConfig,
  output: Output,
): Promise<{ changed: boolean }> {
  requirePrivilege(config, 'uninstall');
  const backends = allBackends(runContext(config, output), config.wait);
  const plans: Plan[] = [];
  for (const backend of backends) {
    if ((await backend.available()) && (await backend.hasDetourState()))
      plans.push(await backend.planRemove());
  }
  const loopback: Step[] = [];
  if ((await anyRecordsAddedLoopback(backends)) && (await loopbackHasAddress(INBOUND_PASSTHROUGH_V6))) {
    loopback.push(loopbackStep(false));
  }
  const changed = plans.some((p) => p.steps.length > 0) || loopback.length > 0;
  if (config.dryRun) {
    printPlan(plans, loopback, output);
    return { changed };
  }
  await applyAndVerify(plans, loopback, output.log);
  return { changed };
}
