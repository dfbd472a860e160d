#!/usr/bin/env node
// The `detour` CLI entry point. The TypeScript sources are compiled to dist/ by `npm run build`.
try {
  await import('../dist/cmd/detour.js');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cmd/detour.js')) {
    console.error('detour: not built yet; run `npm run build` (or scripts/setup.sh) first');
    process.exit(2);
  }
  throw error;
}
