import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { familyOf, formatEndpoint, normalizeAddress, sameEndpoint } from '../../dataplane/endpoint.js';
import {
  classifyOriginalDestination,
  findAddon,
  loadAddon,
  originalDestination,
} from '../../dataplane/original-destination.js';

describe('endpoint helpers', () => {
  test('v4-mapped addresses become plain IPv4; scope ids are dropped', () => {
    expect(normalizeAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('2001:DB8::1')).toBe('2001:db8::1');
    expect(normalizeAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(familyOf('::ffff:192.0.2.1')).toBe(4);
    expect(familyOf('2001:db8::1')).toBe(6);
  });

  test('formatting', () => {
    expect(formatEndpoint('192.0.2.2', 40000)).toBe('192.0.2.2:40000');
    expect(formatEndpoint('::ffff:192.0.2.2', 40000)).toBe('192.0.2.2:40000');
    expect(formatEndpoint('2001:db8::1', 80)).toBe('[2001:db8::1]:80');
    expect(formatEndpoint(undefined, undefined)).toBe('?:?');
  });

  test('comparison ignores v4 mapping', () => {
    expect(sameEndpoint({ address: '::ffff:127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 1 })).toBe(
      true,
    );
    expect(sameEndpoint({ address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 })).toBe(false);
  });
});

describe('classifyOriginalDestination', () => {
  const local = { address: '127.0.0.1', port: 15001 };
  const remote = { address: '198.51.100.1', port: 40000 };

  test('a NATed connection is redirected, with a plain IPv4 address', () => {
    expect(
      classifyOriginalDestination({ address: '198.51.100.10', port: 80, family: 4 }, local, remote),
    ).toEqual({
      redirected: true,
      address: '198.51.100.10',
      port: 80,
      family: 4,
    });
    expect(
      classifyOriginalDestination(
        { address: '198.51.100.10', port: 80, family: 4 },
        { address: '::ffff:127.0.0.1', port: 15001 },
        { address: '::ffff:198.51.100.1', port: 40000 },
      ),
    ).toMatchObject({ redirected: true, address: '198.51.100.10', family: 4 });
  });

  test('no conntrack entry: not redirected', () => {
    expect(classifyOriginalDestination(null, local, remote)).toMatchObject({ redirected: false });
  });

  test('a direct connection to the listener (also v4-mapped) is not redirected', () => {
    const result = classifyOriginalDestination(
      { address: '127.0.0.1', port: 15001, family: 4 },
      local,
      remote,
    );
    expect(result).toEqual({ redirected: false, reason: expect.stringContaining('listener itself') });
    expect(
      classifyOriginalDestination(
        { address: '127.0.0.1', port: 15001, family: 4 },
        { address: '::ffff:127.0.0.1', port: 15001 },
        remote,
      ),
    ).toMatchObject({ redirected: false });
  });

  test('a conntrack entry created by our own reply (it names the peer) is not redirected', () => {
    expect(
      classifyOriginalDestination({ address: '198.51.100.1', port: 40000, family: 4 }, local, remote),
    ).toEqual({
      redirected: false,
      reason: expect.stringContaining('peer'),
    });
  });
});

describe('findAddon', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dtdp-'));
    mkdirSync(join(dir, 'build'));
    mkdirSync(join(dir, 'dist', 'dataplane'), { recursive: true });
    writeFileSync(join(dir, 'build', 'original_dst.node'), '');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('searches upward from the module directory', () => {
    expect(findAddon(join(dir, 'dist', 'dataplane'))).toBe(join(dir, 'build', 'original_dst.node'));
    expect(findAddon(join(dir, 'build'))).toBe(join(dir, 'build', 'original_dst.node'));
  });

  test('gives up at the root', () => {
    expect(findAddon(tmpdir())).toBeUndefined();
  });
});

describe('the native addon on loopback (no NAT)', () => {
  let server: net.Server;
  beforeAll(async () => {
    execFileSync('sh', ['dataplane/native/build.sh'], { stdio: 'ignore' });
    server = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('names the errno for a bad fd', () => {
    expect(() => loadAddon().getOriginalDestination(1 << 20)).toThrow(
      'getsockopt(SO_ORIGINAL_DST) failed: EBADF',
    );
    expect(() => (loadAddon().getOriginalDestination as (x: unknown) => unknown)('x')).toThrow(
      'fd must be a number',
    );
  });

  test('a direct connection is reported as not redirected', async () => {
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => client.once('connect', resolve));
    // The client's own socket: its conntrack entry (if any) names the server, which is its remote end.
    const result = originalDestination(client);
    client.destroy();
    expect(result.redirected).toBe(false);
  });

  test('a closed socket has no fd', () => {
    const socket = new net.Socket();
    expect(originalDestination(socket)).toEqual({
      redirected: false,
      reason: expect.stringContaining('descriptor'),
    });
  });
});
