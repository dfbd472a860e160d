import type { Command } from 'commander';

export function registerInstall(program: Command): void {
  program.command('install').description('install transparent proxy (placeholder)');
}
