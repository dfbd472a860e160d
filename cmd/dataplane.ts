import type { Command } from 'commander';

export function registerDataplane(program: Command): void {
  program
    .command('dataplane')
    .description('run the dataplane: outbound listener forwarding redirected connections')
    .action(() => {
      throw new Error('not implemented yet');
    });
}
