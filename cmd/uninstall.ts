import type { Command } from 'commander';
import { addTransparentProxyOptions, configFromCommand, output } from './transparent-proxy-options.js';

export function registerUninstall(program: Command): void {
  const uninstall = program.command('uninstall').description('remove detour components');
  addTransparentProxyOptions(
    uninstall
      .command('transparent-proxy')
      .description('remove exactly what install added (every backend), leaving all other rules alone'),
  ).action(async (options: Record<string, unknown>) => {
    const { uninstallTransparentProxy } = await import('../init/install.js');
    const config = await configFromCommand(options);
    const result = await uninstallTransparentProxy(config, output);
    if (config.dryRun) return;
    output.log(
      result.changed
        ? 'transparent proxy uninstalled'
        : 'transparent proxy was not installed; nothing changed',
    );
  });
}
