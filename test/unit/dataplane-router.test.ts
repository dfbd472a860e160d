import { describe, expect, jest, test } from '@jest/globals';
import type net from 'node:net';
import { createRouter, decideRoute, type VipLookup } from '../../dataplane/router.js';
import type { Destination } from '../../dataplane/destinations/types.js';
import { createLogger } from '../../dataplane/logger.js';

const destination = (name: string, type: 'HTTP' | 'TCP'): Destination =>
  ({
    name,
    type,
    proxyType: 'Internet',
    authentication: 'NoAuthentication',
    headers: [],
    queries: [],
    trustAll: false,
    connectTimeoutMs: 1000,
    readTimeoutMs: 1000,
    properties: {},
  }) as Destination;

const vips: VipLookup = {
  inRange: (a) => a.startsWith('240.240.'),
  nameFor: (a) => ({ '240.240.0.1': 'orders', '240.240.0.2': 'db', '240.240.0.3': 'gone' })[a],
};
const table = new Map([
  ['orders', destination('orders', 'HTTP')],
  ['db', destination('db', 'TCP')],
]);
const lookup = { get: (name: string) => table.get(name) };

describe('decideRoute', () => {
  test('a VIP of a destination routes to it', () => {
    expect(decideRoute('240.240.0.1', vips, lookup)).toEqual({
      kind: 'destination',
      name: 'orders',
      type: 'HTTP',
    });
    expect(decideRoute('240.240.0.2', vips, lookup)).toEqual({
      kind: 'destination',
      name: 'db',
      type: 'TCP',
    });
  });

  test('an address outside the VIP ranges is not a destination', () => {
    expect(decideRoute('198.51.100.10', vips, lookup)).toBeUndefined();
  });

  test('a VIP of nothing, or of a removed destination, is closed with a reason', () => {
    expect(decideRoute('240.240.9.9', vips, lookup)).toEqual({
      kind: 'unknown-vip',
      reason: '240.240.9.9 is a VIP of no destination',
    });
    expect(decideRoute('240.240.0.3', vips, lookup)).toEqual({
      kind: 'unknown-vip',
      reason: 'destination "gone" (VIP 240.240.0.3) no longer exists',
    });
  });
});

describe('createRouter', () => {
  const socket = () => ({ destroy: jest.fn() }) as unknown as net.Socket & { destroy: jest.Mock };
  const handlers = { http: jest.fn(), tcp: jest.fn() };
  const route = createRouter(vips, lookup, handlers);
  const log = createLogger('silent');

  test('HTTP destinations get a provider that reads the current destination per request', () => {
    const s = socket();
    route(s, '240.240.0.1', log);
    const provider = handlers.http.mock.calls[0]![1] as () => Destination | undefined;
    expect(provider()?.name).toBe('orders');
    table.delete('orders');
    expect(provider()).toBeUndefined();
    table.set('orders', destination('orders', 'HTTP'));
  });

  test('TCP destinations are piped; unknown VIPs closed; other addresses left alone', () => {
    route(socket(), '240.240.0.2', log);
    expect((handlers.tcp.mock.calls[0]![1] as Destination).name).toBe('db');
    const s = socket();
    expect(route(s, '240.240.7.7', log)?.kind).toBe('unknown-vip');
    expect(s.destroy).toHaveBeenCalled();
    const other = socket();
    expect(route(other, '203.0.113.9', log)).toBeUndefined();
    expect(other.destroy).not.toHaveBeenCalled();
  });
});
