// How the CLI turns an error into one line on stderr and an exit code.
// Errors that carry an `exitCode` (bad input: 2) keep it; anything unexpected exits 1.
export function reportAndExit(error: unknown): never {
  const err = error as { message?: string; exitCode?: number };
  const message = (err?.message ?? String(error)).trim();
  process.stderr.write(`detour: ${message}\n`);
  process.exit(typeof err?.exitCode === 'number' ? err.exitCode : 1);
}
