import { describe, expect, test } from '@jest/globals';
import {
  ConfigError,
  DEFAULTS,
  parseConfigText,
  parseLogLevelFlag,
  parsePortFlag,
  parseTimeoutFlag,
  resolveConfig,
} from '../../dataplane/config.js';

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfigText', () => {
  test('accepts the DESIGN.md shape, including sections other modules own', () => {
    const text = `
listeners:
  outbound: { port: 16001 }
  inbound: { enabled: false, port: 16006 }
dns: { port: 15053, ttl: 30 }
admin: { address: 127.0.0.1, port: 9901 }
passthrough: false
destinations: { files: [./destinations.yaml] }
connectivityProxy: { host: cp.example.test, trusted: true }
tenantMode: dedicated
`;
    expect(parseConfigText(text, 'detour.yaml')).toMatchObject({
      listeners: { outbound: { port: 16001 }, inbound: { enabled: false, port: 16006 } },
      passthrough: false,
    });
  });

  test('an empty file, and empty sections, mean defaults', () => {
    expect(parseConfigText('', 'detour.yaml')).toEqual({});
    expect(resolveConfig(parseConfigText('listeners:\n  outbound:\n', 'detour.yaml'), {})).toEqual(DEFAULTS);
  });

  test.each([
    [
      'listeners:\n  outbound: { port: 70000 }\n',
      'detour.yaml: listeners.outbound.port: expected an integer 1-65535',
    ],
    [
      'listeners:\n  outbound: { port: 0 }\n',
      'detour.yaml: listeners.outbound.port: expected an integer 1-65535',
    ],
    [
      'listeners:\n  outbound: { port: "80" }\n',
      'detour.yaml: listeners.outbound.port: expected an integer 1-65535',
    ],
    [
      'listeners:\n  inbound: { port: 1.5 }\n',
      'detour.yaml: listeners.inbound.port: expected an integer 1-65535',
    ],
    [
      'listeners:\n  inbound: { enabled: yes please }\n',
      'detour.yaml: listeners.inbound.enabled: expected true or false',
    ],
    ['passthrough: 1\n', 'detour.yaml: passthrough: expected true or false'],
    ['listeners:\n  outbund: {}\n', 'detour.yaml: listeners: unknown key "outbund"'],
    ['listners: {}\n', 'detour.yaml: unknown key "listners"'],
    ['listeners: 5\n', 'detour.yaml: listeners: expected a mapping'],
    ['- a\n- b\n', 'detour.yaml: expected a mapping'],
  ])('rejects %j', (text, message) => {
    const error = errorOf(() => parseConfigText(text, 'detour.yaml'));
    expect(error.message).toBe(message);
    expect(error.exitCode).toBe(2);
  });

  test('YAML syntax errors name the file, on one line', () => {
    const error = errorOf(() => parseConfigText('listeners: [\n', 'conf/detour.yaml'));
    expect(error.message).toMatch(/^conf\/detour\.yaml: invalid YAML: /);
    expect(error.message).not.toContain('\n');
  });

  test('every problem is reported, on one line', () => {
    const error = errorOf(() =>
      parseConfigText('listeners:\n  outbound: { port: -1 }\npassthrough: maybe\n', 'detour.yaml'),
    );
    expect(error.message).toBe(
      'detour.yaml: listeners.outbound.port: expected an integer 1-65535; passthrough: expected true or false',
    );
  });
});

describe('resolveConfig: defaults < config file < flags', () => {
  const file = parseConfigText(
    'listeners:\n  outbound: { port: 16001 }\n  inbound: { enabled: false, port: 16006 }\npassthrough: false\n',
    'detour.yaml',
  );

  test('defaults', () => {
    expect(resolveConfig(undefined, {})).toEqual({
      listeners: { outbound: { port: 15001 }, inbound: { enabled: true, port: 15006 } },
      dns: {
        port: 15053,
        ttl: 30,
        vip: { ipv4: '240.240.0.0/16', ipv6: '2001:2:0:240::/64' },
        upstream: { resolvConf: '/etc/resolv.conf' },
      },
      admin: { address: '127.0.0.1', port: 9901 },
      destinations: { files: [], env: 'destinations' },
      passthrough: true,
      logLevel: 'info',
      connectTimeoutMs: 10000,
      egressProxy: { noProxy: [], sources: {}, warnings: [] },
    });
  });

  test('the file overrides defaults', () => {
    expect(resolveConfig(file, {})).toMatchObject({
      listeners: { outbound: { port: 16001 }, inbound: { enabled: false, port: 16006 } },
      passthrough: false,
    });
  });

  test('flags override the file', () => {
    const config = resolveConfig(file, {
      outboundPort: 17001,
      inboundPort: 17006,
      inbound: true,
      user: '5678',
      logLevel: 'debug',
      connectTimeoutMs: 500,
    });
    expect(config).toMatchObject({
      listeners: { outbound: { port: 17001 }, inbound: { enabled: true, port: 17006 } },
      passthrough: false,
      user: '5678',
      logLevel: 'debug',
      connectTimeoutMs: 500,
    });
  });

  test('a flag left out keeps the file value', () => {
    expect(resolveConfig(file, { outboundPort: 17001 }).listeners.inbound).toEqual({
      enabled: false,
      port: 16006,
    });
  });

  test('outbound and inbound on the same port is refused', () => {
    expect(errorOf(() => resolveConfig(undefined, { inboundPort: 15001 })).message).toBe(
      'listeners: outbound and inbound port are both 15001; they must differ',
    );
    expect(resolveConfig(undefined, { inboundPort: 15001, inbound: false }).listeners.inbound.enabled).toBe(
      false,
    );
  });
});

describe('flag parsers', () => {
  test('ports', () => {
    expect(parsePortFlag('--outbound-port', '15001')).toBe(15001);
    for (const bad of ['0', '65536', '-1', '1.5', 'abc', '', ' 80']) {
      expect(errorOf(() => parsePortFlag('--outbound-port', bad)).message).toBe(
        `--outbound-port: expected an integer 1-65535, got "${bad}"`,
      );
    }
  });

  test('log level', () => {
    expect(parseLogLevelFlag('debug')).toBe('debug');
    expect(errorOf(() => parseLogLevelFlag('loud')).message).toMatch(
      /^--log-level: expected one of fatal, error/,
    );
  });

  test('timeout', () => {
    expect(parseTimeoutFlag('--connect-timeout', '250')).toBe(250);
    expect(errorOf(() => parseTimeoutFlag('--connect-timeout', '0')).message).toBe(
      '--connect-timeout: expected a positive integer (ms), got "0"',
    );
  });
});

describe('dns, admin and destinations sections', () => {
  test('file values, relative destination files resolved against the config folder, flags on top', () => {
    const file = parseConfigText(
      [
        'dns: { port: 16053, ttl: 10, vip: { ipv4: 240.241.0.0/16 }, upstream: { servers: [198.51.100.53] } }',
        'admin: { port: 19901 }',
        'destinations: { files: [dest.yaml], env: MY_DESTINATIONS }',
      ].join('\n'),
      'detour.yaml',
    );
    const config = resolveConfig(file, { destinationFiles: ['extra.json'], adminPort: 19902 }, '/etc/detour');
    expect(config.dns).toEqual({
      port: 16053,
      ttl: 10,
      vip: { ipv4: '240.241.0.0/16', ipv6: '2001:2:0:240::/64' },
      upstream: { resolvConf: '/etc/resolv.conf', servers: ['198.51.100.53'] },
    });
    expect(config.admin).toEqual({ address: '127.0.0.1', port: 19902 });
    expect(config.destinations.files).toEqual(['/etc/detour/dest.yaml', `${process.cwd()}/extra.json`]);
    expect(config.destinations.env).toBe('MY_DESTINATIONS');
  });

  test.each([
    ['dns: { port: 0 }', 'detour.yaml: dns.port: expected an integer 1-65535'],
    [
      'dns: { upstream: { servers: [not-an-ip] } }',
      'detour.yaml: dns.upstream.servers.0: expected an IP address',
    ],
    ['admin: { address: everywhere }', 'detour.yaml: admin.address: expected an IP address'],
    ['destinations: { file: x.yaml }', 'detour.yaml: destinations: unknown key "file"'],
  ])('%s', (text, message) => {
    expect(() => parseConfigText(text, 'detour.yaml')).toThrow(message);
  });

  test('VIP ranges are checked up front (bad input, exit 2)', () => {
    const file = parseConfigText('dns: { vip: { ipv4: 240.240.1.1/16 } }', 'detour.yaml');
    expect(() => resolveConfig(file, {})).toThrow(
      'dns.vip: VIP IPv4 range: "240.240.1.1/16" has host bits set (did you mean 240.240.0.0/16?)',
    );
  });

  test('the DNS port must differ from the outbound port', () => {
    expect(() => resolveConfig(undefined, { dnsPort: 15001 })).toThrow(
      'dns.port and listeners.outbound.port are both 15001; they must differ',
    );
  });
});
