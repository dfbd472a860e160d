#!/usr/bin/env node
// The detour CLI: one thin file per subcommand; each delegates to init/ or dataplane/.
import { Command, CommanderError } from 'commander';
import { registerInstall } from './install.js';
import { registerUninstall } from './uninstall.js';
import { registerValidate } from './validate.js';
import { registerDataplane } from './dataplane.js';
import { reportAndExit } from './exit.js';

const program = new Command('detour')
  .description(
    'Transparent proxy for Kubernetes pods and Linux hosts: capture egress, resolve destinations, forward with auth.',
  )
  .version('0.1.0')
  .showSuggestionAfterError(true)
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(text.trim().split('\n')[0] + '\n') });

registerInstall(program);
registerUninstall(program);
registerValidate(program);
registerDataplane(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version exit 0; usage errors (unknown flag, missing value) exit 2.
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  reportAndExit(error);
}
