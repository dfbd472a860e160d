// --profile: where the CPU went, from a real V8 .cpuprofile (node --cpu-prof of a small busy script).
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { moduleOf, profileMarkdown, summarizeProfile, type CpuProfile } from '../../bench/profile.js';

const profile = JSON.parse(
  readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'bench-fixtures', 'node.cpuprofile'), 'utf8'),
) as CpuProfile;

describe('CPU profile summary', () => {
  test('self time by function and by module, idle left out', () => {
    const s = summarizeProfile(profile, 5);
    expect(s.busySamples).toBe(148);
    expect(s.idleShare).toBeCloseTo(31 / 179);
    expect(s.functions[0]).toEqual({ name: 'digest node:internal/crypto/hash:164', share: 48 / 148 });
    expect(s.functions[1]).toEqual({ name: 'spin file:///tmp/benchx/prof/busy.mjs:1', share: 33 / 148 });
    expect(s.functions.map((f) => f.name)).toContain('(garbage collector)');
    expect(s.modules[0]?.name).toBe('node:internal/crypto/hash');
    expect(s.functions).toHaveLength(5);
    const total = summarizeProfile(profile, 1000).modules.reduce((a, m) => a + m.share, 0);
    expect(total).toBeCloseTo(1);
  });

  test('script URLs are grouped by npm package, repo file or Node module', () => {
    expect(moduleOf('file:///work/repo/node_modules/undici/lib/dispatcher/client-h1.js')).toBe('npm:undici');
    expect(moduleOf('file:///work/repo/node_modules/@swc/core/index.js')).toBe('npm:@swc/core');
    expect(moduleOf('file:///work/repo/dist/dataplane/http/forward-request.js')).toBe(
      'dataplane/http/forward-request.js',
    );
    expect(moduleOf('node:internal/streams/readable')).toBe('node:internal/streams/readable');
    expect(moduleOf('node:net')).toBe('node:net');
    expect(moduleOf('')).toBe('(native / V8)');
  });

  test('Markdown tables of modules and functions', () => {
    const md = profileMarkdown(summarizeProfile(profile, 3));
    expect(md).toMatch(/^## Dataplane CPU profile \(--profile\)\n/);
    expect(md).toContain('| `digest node:internal/crypto/hash:164` | 32.4% |');
    expect(md).toContain('148 busy samples; idle 17% of all samples');
  });
});
