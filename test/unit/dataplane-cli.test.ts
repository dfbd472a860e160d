import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

// Bad input must exit 2 with one line on stderr, before any listener is opened (needs `npm run build`).
describe('detour dataplane: bad input', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dtdp-cli-'));
    writeFileSync(join(dir, 'detour.yaml'), 'listeners:\n  outbound: { port: 99999 }\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (...args: string[]) =>
    execa('node', ['bin/detour.js', 'dataplane', ...args], { reject: false });

  test.each([
    [['--config', 'CONF'], 'detour: CONF: listeners.outbound.port: expected an integer 1-65535'],
    [['--config', 'MISSING'], 'detour: MISSING: cannot read: ENOENT'],
    [['--outbound-port', 'x'], 'detour: --outbound-port: expected an integer 1-65535, got "x"'],
    [
      ['--log-level', 'loud'],
      'detour: --log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
    [['--user', 'no-such-user-dtdp'], 'detour: --user: no such user "no-such-user-dtdp"'],
  ])('%j', async (args, message) => {
    const paths = { CONF: join(dir, 'detour.yaml'), MISSING: join(dir, 'missing.yaml') };
    const expand = (s: string) => s.replace(/CONF|MISSING/g, (k) => paths[k as keyof typeof paths]);
    const r = await run(...args.map(expand));
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(expand(message));
    expect(r.stdout).toBe('');
  });
});
