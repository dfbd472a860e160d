// `detour dataplane`: parse options, build the config, hand over to dataplane/main.ts.
import type { Command } from 'commander';
import type { FlagValues } from '../dataplane/config.js';

// The config module (zod, yaml) is loaded on use, so other subcommands start without it.
type ConfigModule = typeof import('../dataplane/config.js');

interface Options {
  config?: string;
  outboundPort?: string;
  inboundPort?: string;
  inbound?: boolean;
  user?: string;
  logLevel?: string;
  connectTimeout?: string;
  destinations?: string[];
  dnsPort?: string;
  adminPort?: string;
  passthrough?: string;
}

// Only flags given on the command line count: commander's implicit `inbound: true` from --no-inbound
// must not override `listeners.inbound.enabled: false` from the config file.
function flagValues(
  { parsePortFlag, parseLogLevelFlag, parseTimeoutFlag, ConfigError }: ConfigModule,
  opts: Options,
  fromCli: (key: keyof Options) => boolean,
): FlagValues {
  const parseBooleanFlag = (flag: string, value: string): boolean => {
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw new ConfigError(`${flag}: expected true or false, got "${value}"`);
  };
  const flags: FlagValues = {};
  if (opts.outboundPort !== undefined)
    flags.outboundPort = parsePortFlag('--outbound-port', opts.outboundPort);
  if (opts.inboundPort !== undefined) flags.inboundPort = parsePortFlag('--inbound-port', opts.inboundPort);
  if (fromCli('inbound')) flags.inbound = opts.inbound !== false;
  if (opts.user !== undefined) flags.user = opts.user;
  if (opts.logLevel !== undefined) flags.logLevel = parseLogLevelFlag(opts.logLevel);
  if (opts.connectTimeout !== undefined)
    flags.connectTimeoutMs = parseTimeoutFlag('--connect-timeout', opts.connectTimeout);
  if (opts.destinations?.length) flags.destinationFiles = opts.destinations;
  if (opts.dnsPort !== undefined) flags.dnsPort = parsePortFlag('--dns-port', opts.dnsPort);
  if (opts.adminPort !== undefined) flags.adminPort = parsePortFlag('--admin-port', opts.adminPort);
  if (opts.passthrough !== undefined) flags.passthrough = parseBooleanFlag('--passthrough', opts.passthrough);
  return flags;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

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
    .option(
      '--destinations <file>',
      'destinations file, YAML or JSON (repeatable; reloaded on change)',
      collect,
    )
    .option('--dns-port <port>', 'embedded DNS port on 127.0.0.1 and ::1 (default 15053)')
    .option('--admin-port <port>', 'admin server port on 127.0.0.1 (default 9901)')
    .option('--passthrough <bool>', 'forward traffic that is not for a destination (default true)')
    .action(async (opts: Options, command: Command) => {
      const configModule = await import('../dataplane/config.js');
      const { loadConfigFile, configDir, resolveConfig } = configModule;
      const flags = flagValues(configModule, opts, (key) => command.getOptionValueSource(key) === 'cli');
      const file = opts.config === undefined ? undefined : loadConfigFile(opts.config);
      const dir = opts.config === undefined ? '.' : configDir(opts.config);
      const config = resolveConfig(file, flags, dir);
      const { runDataplane } = await import('../dataplane/main.js');
      await runDataplane(config);
    });
}
