import type { Command } from 'commander';
import { ipv6Enabled, resolveUid } from '../init/host.js';
import { validateTransparentProxy } from '../init/validate.js';
import { originalDestination } from '../dataplane/original-destination.js';
import { addTransparentProxyOptions, configFromCommand, output } from './transparent-proxy-options.js';

export function registerValidate(program: Command): void {
  const validate = program.command('validate').description('check installed detour components');
  addTransparentProxyOptions(
    validate
      .command('transparent-proxy')
      .description(
        'prove that a connection to a TEST-NET address lands on the outbound port with its original destination',
      ),
  ).action(async (options: Record<string, unknown>) => {
    const config = configFromCommand(options);
    const results = await validateTransparentProxy(config, {
      ipv6: config.ipFamilyMode === 'dualstack' && ipv6Enabled(),
      dataplaneUid: await resolveUid(config.dataplaneUser),
      read: originalDestination,
    });
    for (const line of results) output.log(`validation passed: ${line}`);
  });
}
