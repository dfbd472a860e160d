// Flags of `install|uninstall|validate transparent-proxy`, generated from the config field table,
// and their conversion into config sources.
import { Command, Option } from 'commander';
import { FIELDS, envName } from '../init/config/fields.js';
import type { TransparentProxyConfig } from '../init/config/schema.js';

const LIST_KINDS = new Set(['ports', 'cidrs', 'uidPorts']);

const collect = (value: string, previous: string[] = []) => [...previous, value];

function optionKey(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function addTransparentProxyOptions(command: Command): Command {
  command.option('--config <file>', 'YAML config file (repeatable; later files win)', collect, []);
  command.addOption(new Option('--config-file <file>').argParser(collect).default([]).hideHelp());
  for (const field of FIELDS) {
    if (!field.flag) continue;
    const names = [field.flag, ...(field.aliases ?? [])];
    names.forEach((name, i) => {
      const description = `${field.description} (env ${envName(field.path)}; default ${JSON.stringify(field.default)})`;
      let option: Option;
      if (field.kind === 'boolean') option = new Option(`--${name} [bool]`, description);
      else if (LIST_KINDS.has(field.kind))
        option = new Option(`--${name} <value>`, description).argParser(collect);
      else option = new Option(`--${name} <value>`, description);
      if (i > 0) option.hideHelp();
      command.addOption(option);
    });
  }
  return command;
}

/** commander's parsed options → raw values keyed by field path (the last of a flag and its aliases wins). */
export function flagValues(options: Record<string, unknown>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const field of FIELDS) {
    if (!field.flag) continue;
    for (const name of [field.flag, ...(field.aliases ?? [])]) {
      const value = options[optionKey(name)];
      if (value === undefined) continue;
      if (Array.isArray(value)) values[field.path] = value.join(field.kind === 'uidPorts' ? ';' : ',');
      else values[field.path] = value;
    }
  }
  return values;
}

export async function configFromCommand(options: Record<string, unknown>): Promise<TransparentProxyConfig> {
  const { loadConfig } = await import('../init/config/load.js');
  const files = [...((options.config as string[]) ?? []), ...((options.configFile as string[]) ?? [])];
  return loadConfig({ files, env: process.env, flags: flagValues(options) });
}

export const output = {
  out: (text: string) => process.stdout.write(text),
  log: (line: string) => process.stderr.write(`${line}\n`),
};
