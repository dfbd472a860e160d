import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { startAdminServer, type AdminServer } from '../../dataplane/admin.js';
import { createLogger } from '../../dataplane/logger.js';
import { createMetrics } from '../../dataplane/metrics.js';

const metrics = createMetrics();
let missing: string[] = ['dns not listening'];
let admin: AdminServer;
let base: string;

beforeAll(async () => {
  admin = await startAdminServer(
    { address: '127.0.0.1', port: 0 },
    {
      notReady: () => missing,
      config: () => ({ destinations: [{ Name: 'orders', clientSecret: '<redacted>' }] }),
      metrics,
    },
    createLogger('silent'),
  );
  base = `http://${admin.address}`;
});

afterAll(async () => {
  await admin.close();
});

describe('admin server', () => {
  test('/ready is 503 with what is missing, then 200', async () => {
    const notYet = await fetch(`${base}/ready`);
    expect(notYet.status).toBe(503);
    expect(await notYet.json()).toEqual({ ready: false, missing: ['dns not listening'] });
    missing = [];
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
  });

  test('/metrics exposes the counters the dataplane feeds', async () => {
    metrics.request('orders', 200, 12);
    metrics.dnsQuery({ source: 'local', rcode: 'NOERROR', type: 'A', transport: 'udp' });
    metrics.tokenFetch('orders', 'ok', 30);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('detour_http_requests_total{destination="orders",status="200"} 1');
    expect(text).toContain('detour_dns_queries_total{source="local",rcode="NOERROR",type="A"} 1');
    expect(text).toContain('detour_token_fetches_total{destination="orders",outcome="ok"} 1');
    expect(text).toContain('detour_http_request_duration_seconds_bucket{le="0.025",destination="orders"} 1');
  });

  test('/config is the given document; other paths 404; other methods 405', async () => {
    expect(await (await fetch(`${base}/config`)).json()).toEqual({
      destinations: [{ Name: 'orders', clientSecret: '<redacted>' }],
    });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/ready`, { method: 'POST' })).status).toBe(405);
  });
});
