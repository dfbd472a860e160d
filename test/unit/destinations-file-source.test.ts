// The destinations file on a real file system: initial load, reloads through fs.watch and through the
// poll, whole-file failures (last good set kept), per-destination failures (others load, an existing
// one keeps its previous version), and no secret in any log line. Every wait is bounded.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../dataplane/logger.js';
import type { DestinationError } from '../../dataplane/destinations/errors.js';
import {
  parseDestinationsText,
  watchDestinationsFile,
  type DestinationsFileWatcher,
} from '../../dataplane/destinations/file-source.js';
import { secretValues } from '../../dataplane/destinations/redact.js';
import { startDestinationSources } from '../../dataplane/destinations/sources.js';
import type { Destination } from '../../dataplane/destinations/types.js';

let root: string;
let n = 0;
const open: { close(): void }[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'detour-destinations-file-'));
});
afterEach(() => {
  for (const w of open.splice(0)) w.close();
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = join(root, `case-${++n}`);
  mkdirSync(dir);
  return dir;
}

function captureLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { logger: createLogger('debug', stream), lines };
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Recorder {
  calls: { names: string[]; errors: string[] }[];
  last(): { names: string[]; errors: string[] } | undefined;
}

function watch(
  path: string,
  options: { pollIntervalMs?: number; debounceMs?: number } = {},
): { watcher: DestinationsFileWatcher; rec: Recorder; lines: string[] } {
  const { logger, lines } = captureLogger();
  const rec: Recorder = {
    calls: [],
    last() {
      return this.calls[this.calls.length - 1];
    },
  };
  const watcher = watchDestinationsFile(path, {
    logger,
    // a long poll by default, so these tests see fs.watch at work
    pollIntervalMs: options.pollIntervalMs ?? 60_000,
    ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
    onChange: (destinations: Destination[], errors: DestinationError[]) =>
      rec.calls.push({ names: destinations.map((d) => d.name), errors: errors.map(String) }),
  });
  open.push(watcher);
  return { watcher, rec, lines };
}

const yaml = (...entries: string[]) => entries.join('');
const entry = (name: string, extra = '') => `- Name: ${name}\n  URL: https://${name}.example.test\n${extra}`;

describe('parseDestinationsText', () => {
  test('YAML keeps every scalar as written (failsafe schema)', () => {
    const data = parseDestinationsText(
      '- Name: a\n  URL: https://a.example.test\n  Password: 0123\n  URL.headers.x-v: 2.10\n  TrustAll: true\n',
      'd.yaml',
    );
    expect(data).toEqual([
      {
        Name: 'a',
        URL: 'https://a.example.test',
        Password: '0123',
        'URL.headers.x-v': '2.10',
        TrustAll: 'true',
      },
    ]);
  });

  test('JSON by extension', () => {
    expect(parseDestinationsText('{"destinations":[{"Name":"a"}]}', '/x/d.json')).toEqual({
      destinations: [{ Name: 'a' }],
    });
  });

  test.each([
    ['', 'd.yaml', 'd.yaml: the file is empty (write [] for no destinations)'],
    ['# only a comment\n', 'd.yaml', 'd.yaml: the file has no content (write [] for no destinations)'],
    [
      '- Name: a\n  Password: "unterminated-secret',
      'd.yaml',
      'd.yaml: not valid YAML: Missing closing "quote (line 2, column 33)',
    ],
    ['a: 1\na: 2\n', 'd.yaml', 'd.yaml: not valid YAML: Map keys must be unique (line 2, column 1)'],
    [
      '[{"Password":"json-secret" x}]',
      'd.json',
      "d.json: not valid JSON: Expected ',' or '}' after property value in JSON at position 27 (line 1 column 28)",
    ],
    ['json-secret', 'd.json', 'd.json: not valid JSON: unexpected character'],
  ])('%#: %j', (text, source, message) => {
    const result = parseDestinationsText(text, source);
    expect(String(result)).toBe(message);
  });
});

describe('watchDestinationsFile', () => {
  test('add, remove, garbage (last good kept), one bad destination (others load)', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    writeFileSync(path, yaml(entry('orders')));
    const { watcher, rec, lines } = watch(path);

    // the initial load is reported synchronously
    expect(rec.calls).toEqual([{ names: ['orders'], errors: [] }]);
    expect(watcher.current().map((d) => d.name)).toEqual(['orders']);
    expect(watcher.loaded()).toBe(true);

    writeFileSync(path, yaml(entry('orders'), entry('billing')));
    await waitFor('billing added', () => rec.last()?.names.includes('billing') === true);
    expect(watcher.current().map((d) => d.name)).toEqual(['orders', 'billing']);

    writeFileSync(path, yaml(entry('billing')));
    await waitFor('orders removed', () => rec.last()?.names.join() === 'billing');

    writeFileSync(path, 'this: is: not: yaml: [\n');
    await waitFor('garbage reported', () => rec.last()?.errors.length === 1);
    expect(rec.last()).toEqual({
      names: ['billing'],
      errors: [expect.stringMatching(new RegExp(`^${path}: not valid YAML: `)) as unknown as string],
    });
    expect(watcher.current().map((d) => d.name)).toEqual(['billing']);
    expect(lines.join('')).toContain('keeping the last good destinations (1)');

    writeFileSync(path, yaml(entry('billing'), entry('shipping'), '- Name: bad\n  URL: http://127.0.0.1/\n'));
    await waitFor('partial load', () => rec.last()?.names.includes('shipping') === true);
    expect(rec.last()).toEqual({
      names: ['billing', 'shipping'],
      errors: [`${path}: destination "bad": URL: loopback targets are not allowed (127.0.0.1)`],
    });
    expect(watcher.errors().map(String)).toEqual(rec.last()?.errors);
  });

  test('an invalid new version of an existing destination keeps its previous version', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    writeFileSync(path, yaml(entry('orders'), entry('billing')));
    const { watcher, rec, lines } = watch(path);
    writeFileSync(
      path,
      yaml(entry('orders'), '- Name: billing\n  URL: http://localhost:9000/\n', entry('new')),
    );
    await waitFor('reload', () => rec.calls.length === 2);
    expect(rec.last()?.errors).toEqual([
      `${path}: destination "billing": URL: loopback targets are not allowed (localhost)`,
    ]);
    expect(watcher.current().map((d) => [d.name, d.url?.host])).toEqual([
      ['orders', 'orders.example.test'],
      ['new', 'new.example.test'],
      ['billing', 'billing.example.test'],
    ]);
    expect(lines.join('')).toContain(
      'destination \\"billing\\" is invalid in the new version; keeping its previous version',
    );
  });

  test('editors that write a temporary file and rename it over the original', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    writeFileSync(path, yaml(entry('orders')));
    const { rec } = watch(path);
    writeFileSync(join(dir, '.destinations.yaml.swp'), yaml(entry('orders'), entry('renamed')));
    renameSync(join(dir, '.destinations.yaml.swp'), path);
    await waitFor('rename-write seen', () => rec.last()?.names.includes('renamed') === true);
  });

  test('rewriting the same content reloads nothing', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    const text = yaml(entry('orders'));
    writeFileSync(path, text);
    const { watcher, rec } = watch(path, { debounceMs: 20 });
    writeFileSync(path, text);
    await sleep(300);
    watcher.check();
    expect(rec.calls).toHaveLength(1);
  });

  test('a missing file: nothing loaded, the error says so; the file appearing later is picked up', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    const { watcher, rec } = watch(path);
    expect(watcher.loaded()).toBe(false);
    expect(rec.calls).toEqual([{ names: [], errors: [`${path}: cannot be read (ENOENT)`] }]);
    writeFileSync(path, yaml(entry('orders')));
    await waitFor('file appeared', () => rec.last()?.names.join() === 'orders');
    expect(watcher.loaded()).toBe(true);
    expect(watcher.errors()).toEqual([]);
  });

  test('an empty file (an editor truncating before writing) keeps the last good set; [] removes all', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.json');
    writeFileSync(path, JSON.stringify([{ Name: 'orders', URL: 'https://orders.example.test' }]));
    const { watcher, rec } = watch(path);
    writeFileSync(path, '');
    await waitFor('empty file reported', () => rec.calls.length === 2);
    expect(rec.last()).toEqual({
      names: ['orders'],
      errors: [`${path}: the file is empty (write [] for no destinations)`],
    });
    writeFileSync(path, '[]');
    await waitFor('all removed', () => rec.calls.length === 3);
    expect(rec.last()).toEqual({ names: [], errors: [] });
    expect(watcher.current()).toEqual([]);
  });

  test('polling alone finds changes when the folder cannot be watched (created later)', async () => {
    const dir = join(freshDir(), 'later');
    const path = join(dir, 'destinations.yaml');
    const { rec, lines } = watch(path, { pollIntervalMs: 100 });
    expect(lines.join('')).toContain('cannot watch');
    mkdirSync(dir);
    writeFileSync(path, yaml(entry('orders')));
    await waitFor('poll found the file', () => rec.last()?.names.join() === 'orders');
  });

  test('a changed key store file reloads the destination that uses it', async () => {
    const dir = freshDir();
    const key = (name: string): Buffer => {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          'k.pem',
          '-out',
          'c.pem',
          '-days',
          '1',
          '-subj',
          `/CN=${name}`,
        ],
        { cwd: dir, stdio: 'ignore' },
      );
      return Buffer.concat([readFileSync(join(dir, 'c.pem')), readFileSync(join(dir, 'k.pem'))]);
    };
    writeFileSync(join(dir, 'client.pem'), key('one'));
    const path = join(dir, 'destinations.yaml');
    writeFileSync(
      path,
      yaml(
        entry('mtls', '  Authentication: ClientCertificateAuthentication\n  KeyStoreLocation: client.pem\n'),
      ),
    );
    const { watcher, rec } = watch(path);
    expect(watcher.errors()).toEqual([]);
    const first = watcher.current()[0]?.keyStore?.content;
    writeFileSync(join(dir, 'client.pem'), key('two'));
    await waitFor('key store reload', () => rec.calls.length === 2);
    const second = watcher.current()[0]?.keyStore?.content;
    expect(second?.equals(readFileSync(join(dir, 'client.pem')))).toBe(true);
    expect(first?.equals(second!)).toBe(false);
  });

  test('close() stops reloading', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    writeFileSync(path, yaml(entry('orders')));
    const { watcher, rec } = watch(path, { pollIntervalMs: 50, debounceMs: 10 });
    watcher.close();
    writeFileSync(path, yaml(entry('orders'), entry('billing')));
    await sleep(300);
    expect(rec.calls).toHaveLength(1);
  });

  test('no secret from the destinations appears in any log line, also for broken files', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    const good =
      '- Name: orders\n  URL: https://orders.example.test\n  Authentication: OAuth2ClientCredentials\n' +
      '  tokenServiceURL: https://auth.example.test/oauth/token\n  clientId: orders-client\n' +
      '  clientSecret: s3cret-client-value\n  URL.headers.x-api-key: api-key-value\n';
    writeFileSync(path, good);
    const { watcher, rec, lines } = watch(path);
    const secrets = secretValues(watcher.current()[0]!);
    expect(secrets.length).toBeGreaterThan(0);
    // a YAML error right at the secret: the parser's own message would quote that line
    writeFileSync(path, good.replace('s3cret-client-value', '"s3cret-client-value'));
    await waitFor('broken file', () => rec.calls.length === 2);
    // a destination error next to secrets
    writeFileSync(path, good.replace('https://orders.example.test', 'http://localhost'));
    await waitFor('invalid destination', () => rec.calls.length === 3);
    const log = lines.join('');
    expect(log).toContain('not valid YAML');
    expect(log).toContain('loopback targets are not allowed');
    expect(secrets.filter((s) => log.includes(s))).toHaveLength(0);
  });
});

describe('startDestinationSources', () => {
  test('files then the env variable; the env wins on equal names; reloads reach the registry', async () => {
    const dir = freshDir();
    const path = join(dir, 'destinations.yaml');
    writeFileSync(path, yaml(entry('orders'), entry('billing')));
    const { logger, lines } = captureLogger();
    const sources = startDestinationSources({
      files: [path],
      env: { destinations: JSON.stringify([{ name: 'Orders', url: 'https://env-orders.example.test' }]) },
      logger,
      pollIntervalMs: 60_000,
    });
    open.push(sources);
    const { registry } = sources;
    expect(sources.loaded()).toBe(true);
    expect(registry.names()).toEqual(['Orders', 'billing']);
    expect(registry.get('orders')?.url?.host).toBe('env-orders.example.test');
    expect(lines.join('')).toContain(
      `destination \\"Orders\\" from environment variable \\"destinations\\" overrides the one from ${path}`,
    );

    const changes: string[][] = [];
    registry.onChange((c) => changes.push([...c.added, ...c.removed]));
    writeFileSync(path, yaml(entry('orders'), entry('shipping')));
    await waitFor('registry updated', () => registry.get('shipping') !== undefined);
    expect(registry.names()).toEqual(['Orders', 'shipping']);
    expect(changes).toEqual([['shipping', 'billing']]);
  });

  test('env errors are logged and kept in the registry', () => {
    const { logger, lines } = captureLogger();
    const sources = startDestinationSources({ env: { destinations: '[oops' }, logger });
    open.push(sources);
    expect(sources.registry.errors().map(String)).toEqual([
      'environment variable "destinations": not valid JSON (unexpected character); expected a JSON list of destinations (the value is not shown: it may hold secrets)',
    ]);
    expect(lines.join('')).toContain('not valid JSON');
    expect(sources.registry.names()).toEqual([]);
  });

  test('envVar false reads no variable', () => {
    const { logger } = captureLogger();
    const sources = startDestinationSources({
      envVar: false,
      env: { destinations: '[{"name":"a","url":"https://a.example.test"}]' },
      logger,
    });
    expect(sources.registry.names()).toEqual([]);
  });
});
