// callUpstream (dataplane/http/upstream-call.ts) against a real node:http upstream on loopback, with
// a real node:http server as the app side: status/headers, body delivered before and after pipeTo,
// backpressure on a large body, dump(), errors before and after the headers, abort by signal.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { callUpstream, type UpstreamResponse } from '../../dataplane/http/upstream-call.js';

let upstream: http.Server;
let pool: Pool;
const MiB = 1024 * 1024;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (req.url === '/small') {
      res.writeHead(201, 'Made', { 'x-one': 'a', 'set-cookie': ['c=1', 'd=2'] });
      res.end('hello');
    } else if (req.url === '/large') {
      const chunk = Buffer.alloc(64 * 1024, 120);
      let left = 32; // 2 MiB
      const more = (): void => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    } else if (req.url === '/break') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    } else if (req.url === '/hang') {
      // never answers
    }
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  pool = new Pool(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});

afterAll(async () => {
  await pool.destroy();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

/** An app-side server whose handler pipes `call()`'s response; returns what the app client received. */
async function throughApp(
  call: () => Promise<UpstreamResponse>,
  readSlowly = false,
): Promise<{ status: number; body: Buffer; bytesSeen: number; error?: Error; appError?: string }> {
  let bytesSeen = 0;
  let error: Error | undefined;
  const app = http.createServer((_req, res) => {
    void call().then((response) => {
      res.writeHead(response.statusCode, response.headers);
      response.pipeTo(
        res,
        (n) => (bytesSeen += n),
        (e) => (error = e),
      );
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const port = (app.address() as AddressInfo).port;
  try {
    return await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/' }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          if (readSlowly) {
            res.pause();
            setTimeout(() => res.resume(), 1);
          }
        });
        const done = (appError?: string): void =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks),
            bytesSeen,
            ...(error ? { error } : {}),
            ...(appError ? { appError } : {}),
          });
        res.on('end', () => done());
        res.on('error', (e) => done(e.message));
        res.on('close', () => done('closed'));
      });
      req.on('error', () => undefined);
    });
  } finally {
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
  }
}

describe('callUpstream', () => {
  test('status, status text and headers (lower-case, repeated ones as arrays)', async () => {
    const r = await callUpstream(pool, { method: 'GET', path: '/small' });
    expect(r.statusCode).toBe(201);
    expect(r.statusText).toBe('Made');
    expect(r.headers['x-one']).toBe('a');
    expect(r.headers['set-cookie']).toEqual(['c=1', 'd=2']);
    await r.dump();
  });

  test('a body that arrived before pipeTo() is delivered, and the response ends', async () => {
    const got = await throughApp(async () => {
      const r = await callUpstream(pool, { method: 'GET', path: '/small' });
      await new Promise((w) => setTimeout(w, 50)); // the body is in by now
      return r;
    });
    expect(got.status).toBe(201);
    expect(got.body.toString()).toBe('hello');
    expect(got.bytesSeen).toBe(5);
  });

  test('a large body to a slow reader arrives complete (backpressure, no loss)', async () => {
    const got = await throughApp(() => callUpstream(pool, { method: 'GET', path: '/large' }), true);
    expect(got.body.length).toBe(2 * MiB);
    expect(got.bytesSeen).toBe(2 * MiB);
    expect(got.body.every((b) => b === 120)).toBe(true);
  });

  test('dump() discards the body; the pool stays usable', async () => {
    const r = await callUpstream(pool, { method: 'GET', path: '/large' });
    await r.dump();
    const next = await callUpstream(pool, { method: 'GET', path: '/small' });
    expect(next.statusCode).toBe(201);
    await next.dump();
  });

  test('text(): a short body whole, a long one cut at the limit and abandoned; the pool stays usable', async () => {
    const short = await callUpstream(pool, { method: 'GET', path: '/small' });
    expect(await short.text(100)).toBe('hello');
    const long = await callUpstream(pool, { method: 'GET', path: '/large' });
    const head = await long.text(10);
    expect(head).toBe('x'.repeat(10));
    const next = await callUpstream(pool, { method: 'GET', path: '/small' });
    expect(await next.text(3)).toBe('hel');
  });

  test('the target breaking off mid-body: onError once, the app connection destroyed', async () => {
    const got = await throughApp(() => callUpstream(pool, { method: 'GET', path: '/break' }));
    expect(got.error).toBeInstanceOf(Error);
    expect(got.appError).toBeDefined();
    expect(got.body.toString()).toBe('partial');
  });

  test('no response: the promise rejects (connection refused)', async () => {
    const refused = new Pool('http://127.0.0.1:1');
    await expect(callUpstream(refused, { method: 'GET', path: '/' })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    await refused.destroy();
  });

  test('abort by signal, before the response and before dispatch', async () => {
    const abort = new AbortController();
    const pending = callUpstream(pool, { method: 'GET', path: '/hang' }, abort.signal);
    setTimeout(() => abort.abort(new Error('app went away')), 20);
    await expect(pending).rejects.toThrow('app went away');
    const already = new AbortController();
    already.abort(new Error('gone already'));
    await expect(callUpstream(pool, { method: 'GET', path: '/small' }, already.signal)).rejects.toThrow(
      'gone already',
    );
  });

  test('headersTimeout: rejects with undici’s timeout error', async () => {
    await expect(
      callUpstream(pool, { method: 'GET', path: '/hang', headersTimeout: 50 }),
    ).rejects.toMatchObject({ code: 'UND_ERR_HEADERS_TIMEOUT' });
  });
});
