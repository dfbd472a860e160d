import type { Command } from 'commander';
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
    const { ipv6Enabled, resolveUid } = await import('../init/host.js');
    const { validateTransparentProxy } = await import('../init/validate.js');
    const { originalDestination } = await import('../dataplane/original-destination.js');
    const config = await configFromCommand(options);
    const results = await validateTransparentProxy(config, {
      ipv6: config.ipFamilyMode === 'dualstack' && ipv6Enabled(),
      dataplaneUid: await resolveUid(config.dataplaneUser),
      read: originalDestination,
    });
    for (const line of results) output.log(`validation passed: ${line}`);
  });
}
