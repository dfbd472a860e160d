// Jest helper: one lab per describe block. Removes leftovers of killed earlier runs, creates the lab
// in beforeAll and destroys it in afterAll.
//   const lab = useLab();            // then lab().run('app', [...]) inside tests
import { afterAll, beforeAll } from '@jest/globals';
import { cleanupStaleLabs, createLab, type CreateLabOptions, type Lab } from './lab.js';

export function useLab(opts: CreateLabOptions = {}, timeoutMs = 60_000): () => Lab {
  let lab: Lab | undefined;
  beforeAll(async () => {
    cleanupStaleLabs();
    lab = await createLab(opts);
  }, timeoutMs);
  afterAll(async () => {
    const l = lab;
    lab = undefined;
    await l?.destroy();
  }, timeoutMs);
  return () => {
    if (!lab) throw new Error('useLab: the lab is not up (outside a test, or beforeAll failed)');
    return lab;
  };
}
