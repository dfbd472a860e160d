// Per-identity upstream pools: separate, bounded, idle ones closed; the map never keys on the JWT itself.
import { afterEach, describe, expect, test } from '@jest/globals';
import { UpstreamPools, identityDigest } from '../../dataplane/http/pools.js';
import { destination, memoryLogger, waitFor } from './http-harness.js';

const pools: UpstreamPools[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close(100)));
});

const via = {
  kind: 'connectivity-proxy' as const,
  origin: 'http://192.0.2.10:20003',
  endpoint: '192.0.2.10:20003',
};
const erp = destination({ name: 'erp', proxyType: 'OnPremise', url: new URL('http://erp.internal:8080/') });

function make(options: { maxIdentityPools?: number; identityIdleCloseMs?: number } = {}) {
  const p = new UpstreamPools({ log: memoryLogger().log, ...options });
  pools.push(p);
  return p;
}

describe('per-identity pools', () => {
  test('each identity gets its own pool; the same identity the same pool; no identity the destination pool', () => {
    const p = make();
    const alice = p.get(erp, undefined, via, 'user jwt-alice');
    const bob = p.get(erp, undefined, via, 'user jwt-bob');
    const shared = p.get(erp, undefined, via);
    expect(alice.pool).not.toBe(bob.pool);
    expect(shared.pool).not.toBe(alice.pool);
    expect(p.get(erp, undefined, via, 'user jwt-alice').pool).toBe(alice.pool);
    expect(p.size).toBe(3);
  });

  test('at most maxIdentityPools: the least recently used identity pool is closed', () => {
    const p = make({ maxIdentityPools: 2 });
    const a = p.get(erp, undefined, via, 'user a');
    p.get(erp, undefined, via, 'user b');
    p.get(erp, undefined, via, 'user a'); // a is now the most recent
    p.get(erp, undefined, via, 'user c'); // evicts b
    expect(p.size).toBe(2);
    expect(p.get(erp, undefined, via, 'user a').pool).toBe(a.pool);
    expect(a.pool.closed).toBe(false);
  });

  test('identity pools unused for identityIdleCloseMs are closed by the sweeper', async () => {
    const p = make({ identityIdleCloseMs: 50 });
    const a = p.get(erp, undefined, via, 'user a');
    await waitFor('the sweep', () => (p.size === 0 ? true : undefined), 5000);
    expect(a.pool.closed).toBe(true);
  });

  test('the digest is stable, short and does not contain the identity', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    expect(identityDigest(`user ${jwt}`)).toBe(identityDigest(`user ${jwt}`));
    expect(identityDigest(`user ${jwt}`)).toMatch(/^[0-9a-f]{32}$/);
    expect(identityDigest(`user ${jwt}`)).not.toContain('eyJ');
  });
});
