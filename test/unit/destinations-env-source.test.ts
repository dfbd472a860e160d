import { describe, expect, test } from '@jest/globals';
import { destinationsFromEnv } from '../../dataplane/destinations/env-source.js';

describe('destinationsFromEnv', () => {
  test('unset or blank: nothing, no errors', () => {
    expect(destinationsFromEnv({})).toEqual({ destinations: [], errors: [] });
    expect(destinationsFromEnv({ destinations: '  ' })).toEqual({ destinations: [], errors: [] });
  });

  test('a JSON list in the SAP Cloud SDK shape, mixed with SAP property names', () => {
    const env = {
      destinations: JSON.stringify([
        { name: 'orders', url: 'https://orders.example.test', username: 'u', password: 'p' },
        { Name: 'billing', URL: 'https://billing.example.test', Authentication: 'NoAuthentication' },
      ]),
    };
    const { destinations, errors } = destinationsFromEnv(env);
    expect(errors).toEqual([]);
    expect(destinations.map((d) => [d.name, d.authentication, d.url?.host])).toEqual([
      ['orders', 'BasicAuthentication', 'orders.example.test'],
      ['billing', 'NoAuthentication', 'billing.example.test'],
    ]);
  });

  test('another variable name', () => {
    const env = { MY_DESTS: '[{"name":"a","url":"https://a.example.test"}]' };
    expect(destinationsFromEnv(env, 'MY_DESTS').destinations.map((d) => d.name)).toEqual(['a']);
    expect(destinationsFromEnv(env).destinations).toEqual([]);
  });

  test('invalid JSON: names the variable and where, never the value', () => {
    const secret = 'sekret-value-do-not-echo';
    for (const value of [`[{"name":"a","password":"${secret}" x}]`, secret, `{"password": "${secret}`]) {
      const { destinations, errors } = destinationsFromEnv({ destinations: value });
      expect(destinations).toEqual([]);
      expect(errors).toHaveLength(1);
      const line = String(errors[0]);
      expect(line.startsWith('environment variable "destinations": not valid JSON')).toBe(true);
      expect(
        line.endsWith('expected a JSON list of destinations (the value is not shown: it may hold secrets)'),
      ).toBe(true);
      expect(line.includes(secret)).toBe(false);
    }
    expect(String(destinationsFromEnv({ destinations: '[1,' }).errors[0])).toMatch(
      /^environment variable "destinations": not valid JSON \(the text ends too early\);/,
    );
    expect(String(destinationsFromEnv({ destinations: '{"a" 1}' }).errors[0])).toMatch(
      /^environment variable "destinations": not valid JSON \(Expected ':' after property name in JSON at position 5 \(line 1 column 6\)\);/,
    );
  });

  test('not a list', () => {
    expect(destinationsFromEnv({ destinations: '{"name":"a"}' }).errors.map(String)).toEqual([
      'environment variable "destinations": expected a list of destinations (or a mapping with a "destinations" list), got a mapping',
    ]);
  });

  test('invalid destinations are reported with the variable as source; valid ones load', () => {
    const env = {
      destinations: JSON.stringify([
        { name: 'local', url: 'http://localhost:4004' },
        { name: 'ok', url: 'https://ok.example.test' },
      ]),
    };
    const { destinations, errors } = destinationsFromEnv(env);
    expect(destinations.map((d) => d.name)).toEqual(['ok']);
    expect(errors.map(String)).toEqual([
      'environment variable "destinations": destination "local": URL: loopback targets are not allowed (localhost)',
    ]);
  });

  test('key store files are looked up in baseDir', () => {
    const read: string[] = [];
    const { errors } = destinationsFromEnv(
      {
        destinations: JSON.stringify([
          {
            name: 'm',
            url: 'https://m.example.test',
            authentication: 'ClientCertificateAuthentication',
            keyStoreName: 'c.p12',
          },
        ]),
      },
      'destinations',
      {
        baseDir: '/etc/detour',
        readFile: (p) => {
          read.push(p);
          throw Object.assign(new Error('no'), { code: 'ENOENT' });
        },
      },
    );
    expect(read).toEqual(['/etc/detour/c.p12']);
    expect(errors.map(String)).toEqual([
      'environment variable "destinations": destination "m": KeyStoreLocation: "c.p12" not found: no certificate of that name came with the destination, and the file /etc/detour/c.p12 cannot be read (ENOENT)',
    ]);
  });
});
