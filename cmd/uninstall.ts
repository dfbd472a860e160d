import type { Command } from 'commander';

export function registerUninstall(program: Command): void {
  program.command('uninstall').description('uninstall transparent proxy (placeholder)');
}
