import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startEchoUpstream, type EchoUpstream } from '../peers/echo-upstream.js';

// Large bodies through the handler, with the handler alone in a child process so its memory can be
// measured: 1 GiB down and 1 GiB chunked up (curl as the app), RSS growth bounded. Plus curl's
// `Expect: 100-continue` upload. Loopback only.
const GiB = 1024 ** 3;
const MAX_RSS_GROWTH = 200 * 1024 ** 2;
const repo = resolve(import.meta.dirname ?? '.', '../..');
let dir = '';
let child: ChildProcess;
let proxyPort = 0;
let up: EchoUpstream;

// The child runs the TypeScript sources with Node's own type stripping; imports written `./x.js` are
// resolved to `./x.ts` by this hook (as jest's moduleNameMapper does).
const HOOK = `
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    if (/^(\\.|\\/|file:).*\\.js$/.test(specifier)) return next(specifier.slice(0, -3) + '.ts', context);
    throw error;
  }
}`;

const CHILD = `
import net from 'node:net';
import { pino } from ${JSON.stringify(pathToFileURL(join(repo, 'node_modules/pino/pino.js')).href)};
import { createHttpDestinationHandler } from ${JSON.stringify(pathToFileURL(join(repo, 'dataplane/http/index.ts')).href)};

const { origin, authorization } = JSON.parse(process.argv[2]);
const handler = createHttpDestinationHandler({
  authenticator: { authenticate: async () => ({ headers: [['authorization', authorization]] }) },
  logger: pino({ level: 'warn' }, process.stderr),
});
const destination = {
  name: 'big', type: 'HTTP', proxyType: 'Internet', authentication: 'NoAuthentication',
  url: new URL(origin), headers: [], queries: [], trustAll: false,
  connectTimeoutMs: 2000, readTimeoutMs: 10000, properties: {},
};
const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => handler.handle(s, destination));
let baseline = 0;
let peak = 0;
setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 20).unref();
process.on('message', (m) => {
  if (m === 'reset') { globalThis.gc?.(); baseline = process.memoryUsage.rss(); peak = baseline; process.send({ baseline }); }
  if (m === 'report') process.send({ baseline, peak: Math.max(peak, process.memoryUsage.rss()) });
  if (m === 'stop') { server.close(); handler.close(100).then(() => process.exit(0)); }
});
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
`;

function ask<T>(message: string): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(message);
  });
}

function curl(args: string[], timeoutMs = 50_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      'sh',
      ['-c', args.join(' ')],
      { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve({ stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'detour-http-large-'));
  writeFileSync(join(dir, 'hook.mjs'), HOOK);
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)});\n`,
  );
  writeFileSync(join(dir, 'child.mts'), CHILD);
  up = await startEchoUpstream();
  child = fork(
    join(dir, 'child.mts'),
    [JSON.stringify({ origin: up.origin, authorization: 'Bearer big-token' })],
    {
      execArgv: [
        '--experimental-transform-types',
        '--no-warnings',
        '--expose-gc',
        '--import',
        join(dir, 'register.mjs'),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  proxyPort = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`handler child exited with ${code}`)));
  });
}, 30_000);

afterAll(async () => {
  if (child?.connected) {
    child.send('stop');
    await new Promise((r) => child.once('exit', r));
  } else if (child?.pid) child.kill('SIGKILL');
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('large bodies through the handler (child process, curl as the app)', () => {
  test('1 GiB download streamed with bounded memory', async () => {
    await ask('reset');
    const { stdout } = await curl([
      'curl',
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      "'%{http_code} %{size_download}'",
      `http://127.0.0.1:${proxyPort}/bytes/${GiB}`,
    ]);
    expect(stdout).toBe(`200 ${GiB}`);
    const { baseline, peak } = await ask<{ baseline: number; peak: number }>('report');
    expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH);
  }, 60_000);

  test('1 GiB chunked upload streamed with bounded memory; the upstream counts every byte', async () => {
    await ask('reset');
    const { stdout } = await curl([
      'head',
      '-c',
      String(GiB),
      '/dev/zero',
      '|',
      'curl',
      '-sS',
      '-T',
      '-',
      '-X',
      'POST',
      '-H',
      "'Transfer-Encoding: chunked'",
      '-H',
      "'Expect:'",
      `http://127.0.0.1:${proxyPort}/upload`,
    ]);
    expect(JSON.parse(stdout)).toEqual({ bytes: GiB });
    const last = up.requests[up.requests.length - 1];
    expect(last?.headers.find(([n]) => n.toLowerCase() === 'transfer-encoding')?.[1]).toBe('chunked');
    const { baseline, peak } = await ask<{ baseline: number; peak: number }>('report');
    expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH);
  }, 60_000);

  test('curl with Expect: 100-continue gets 100 Continue from the proxy and uploads in full', async () => {
    const size = 64 * 1024 * 1024;
    await curl(['truncate', '-s', String(size), join(dir, 'upload.bin')]);
    const { stdout, stderr } = await curl([
      'curl',
      '-sS',
      '-v',
      '-H',
      "'Expect: 100-continue'",
      '--expect100-timeout',
      '10',
      '-T',
      join(dir, 'upload.bin'),
      '-X',
      'POST',
      `http://127.0.0.1:${proxyPort}/upload`,
    ]);
    expect(stderr).toMatch(/< HTTP\/1\.1 100 Continue/);
    expect(JSON.parse(stdout)).toEqual({ bytes: size });
    // the proxy answers Expect itself; the upstream never sees it
    const last = up.requests[up.requests.length - 1];
    expect(last?.headers.some(([n]) => n.toLowerCase() === 'expect')).toBe(false);
    expect(last?.headers.find(([n]) => n.toLowerCase() === 'authorization')?.[1]).toBe('Bearer big-token');
  }, 30_000);
});
