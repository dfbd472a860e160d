// `detour dataplane`: parse options, build the config, hand over to dataplane/main.ts.
import type { Command } from 'commander';
import {
  type FlagValues,
  loadConfigFile,
  parseLogLevelFlag,
  parsePortFlag,
  parseTimeoutFlag,
  resolveConfig,
} from '../dataplane/config.js';
import { runDataplane } from '../dataplane/main.js';

interface Options {
  config?: string;
  outboundPort?: string;
  inboundPort?: string;
  inbound?: boolean;
  user?: string;
  logLevel?: string;
  connectTimeout?: string;
}

// Only flags given on the command line count: commander's implicit `inbound: true` from --no-inbound
// must not override `listeners.inbound.enabled: false` from the config file.
function flagValues(opts: Options, fromCli: (key: keyof Options) => boolean): FlagValues {
  const flags: FlagValues = {};
  if (opts.outboundPort !== undefined)
    flags.outboundPort = parsePortFlag('--outbound-port', opts.outboundPort);
  if (opts.inboundPort !== undefined) flags.inboundPort = parsePortFlag('--inbound-port', opts.inboundPort);
  if (fromCli('inbound')) flags.inbound = opts.inbound !== false;
  if (opts.user !== undefined) flags.user = opts.user;
  if (opts.logLevel !== undefined) flags.logLevel = parseLogLevelFlag(opts.logLevel);
  if (opts.connectTimeout !== undefined)
    flags.connectTimeoutMs = parseTimeoutFlag('--connect-timeout', opts.connectTimeout);
  return flags;
}

export function registerDataplane(program: Command): void {
  program
    .command('dataplane')
    .description('run the dataplane: forward redirected connections to their original destination')
    .option('--config <file>', 'detour.yaml (listeners, passthrough, ...)')
    .option('--outbound-port <port>', 'outbound listener port on 127.0.0.1 and ::1 (default 15001)')
    .option('--inbound-port <port>', 'inbound listener port on 0.0.0.0 and :: (default 15006)')
    .option('--no-inbound', 'do not open the inbound listener')
    .option('--user <name|uid>', 'when started as root, drop to this user before listening')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--connect-timeout <ms>', 'upstream connect timeout in milliseconds (default 10000)')
    .action(async (opts: Options, command: Command) => {
      const flags = flagValues(opts, (key) => command.getOptionValueSource(key) === 'cli');
      const file = opts.config === undefined ? undefined : loadConfigFile(opts.config);
      await runDataplane(resolveConfig(file, flags));
    });
}
