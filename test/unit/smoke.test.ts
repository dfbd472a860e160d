import { describe, expect, test } from '@jest/globals';
import { execa } from 'execa';

describe('cli', () => {
  test('prints help', async () => {
    const r = await execa('node', ['bin/detour.js', '--help'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Usage: detour');
  });
});
