import type { Command } from 'commander';
import { addTransparentProxyOptions, configFromCommand, output } from './transparent-proxy-options.js';

export function registerInstall(program: Command): void {
  const install = program.command('install').description('install detour components');
  addTransparentProxyOptions(
    install
      .command('transparent-proxy')
      .description(
        "redirect the workload's traffic to the dataplane (iptables, iptables-nft or native nftables)",
      ),
  ).action(async (options: Record<string, unknown>) => {
    // Loaded on use: the other subcommands (and --help) start without them.
    const { installTransparentProxy } = await import('../init/install.js');
    const { originalDestination } = await import('../dataplane/original-destination.js');
    const config = await configFromCommand(options);
    const result = await installTransparentProxy(config, output, originalDestination);
    if (config.dryRun) return;
    output.log(
      result.changed
        ? `transparent proxy installed (backend ${result.backend}, ${result.rules.length} rules)`
        : `transparent proxy already installed as configured (backend ${result.backend}); nothing changed`,
    );
    for (const line of result.validation ?? []) output.log(`validation passed: ${line}`);
  });
}
