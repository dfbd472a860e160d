// Errors the CLI reports as one line. Bad input (a config field, flag, env var, missing binary,
// missing privilege) exits 2 and changes nothing; a failure while applying exits 1.
export class UsageError extends Error {
  readonly exitCode = 2;
}

export class ApplyError extends Error {
  readonly exitCode = 1;
}
