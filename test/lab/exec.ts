// Command execution for the lab: one-shot commands (`runCommand`) and tracked long-running processes
// (`spawnBackground`), both through zx. Commands are run as `exec argv...` so the PID zx reports is
// the program itself (ip netns exec and setpriv exec in turn), which is what timeouts and stop() kill.
import { createWriteStream, type WriteStream } from 'node:fs';
import { constants } from 'node:os';
import { $, quote } from 'zx';

export interface RunOptions {
  /** Run as this uid (and the same gid, no supplementary groups), via setpriv. */
  uid?: number;
  /** Extra environment variables (merged over the test process's environment). */
  env?: Record<string, string>;
  /** Written to the command's stdin. */
  input?: string;
  /** Kill the command (SIGTERM, then SIGKILL) after this long; default 30 s for run(). */
  timeoutMs?: number;
  /** Throw on a non-zero exit (default true). */
  reject?: boolean;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface Background {
  pid: number;
  /** Everything the process wrote so far (stdout and stderr interleaved; the last 4 MiB). */
  output(): string;
  /** Resolves with the output line(s) holding the first match; rejects on timeout or exit. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after 5 s; resolves once the process has exited. */
  stop(): Promise<void>;
  /** Exit code, or null when it ended by a signal. Never rejects. */
  exited: Promise<number | null>;
}

const DEFAULT_RUN_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const MAX_OUTPUT = 4 * 1024 * 1024;

/** A command line as a shell would read it, for error messages. */
export function describeArgv(argv: readonly string[]): string {
  return argv.map((a) => quote(a)).join(' ');
}

function tail(text: string, max = 2000): string {
  const t = text.trimEnd();
  return t.length > max ? `...${t.slice(-max)}` : t;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const signo = signal ? constants.signals[signal] : undefined;
  return signo !== undefined ? 128 + signo : -1;
}

// (No TypeScript-only syntax such as parameter properties in test/lab: Node can run these files by
// type stripping alone, which the lab's own tests use for child processes.)
export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly result: RunResult;
  constructor(argv: readonly string[], result: RunResult, reason: string) {
    const out = result.stderr.trim()
      ? `stderr: ${tail(result.stderr)}`
      : result.stdout.trim()
        ? `stdout: ${tail(result.stdout)}`
        : 'no output';
    super(`command ${reason}: ${describeArgv(argv)}\n${out}`);
    this.name = 'CommandError';
    this.argv = argv;
    this.result = result;
  }
}

function envOf(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return extra ? { ...process.env, ...extra } : process.env;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** Runs argv (no shell interpretation), collecting its output. Throws CommandError unless reject: false. */
export async function runCommand(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new Error('runCommand: empty argv');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const p = $({
    quiet: true,
    nothrow: true,
    env: envOf(opts.env),
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(opts.input === undefined ? {} : { input: opts.input }),
  })`exec ${argv}`;
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    if (p.pid !== undefined) {
      const pid = p.pid;
      kill(pid, 'SIGTERM');
      killTimer = setTimeout(() => kill(pid, 'SIGKILL'), 2000);
    }
  }, timeoutMs);
  let out;
  try {
    out = await p;
  } finally {
    clearTimeout(timer);
    if (killTimer) clearTimeout(killTimer);
  }
  const result: RunResult = {
    exitCode: exitCodeOf(out.exitCode, out.signal),
    stdout: out.stdout,
    stderr: out.stderr,
  };
  if (timedOut) throw new CommandError(argv, result, `timed out after ${timeoutMs} ms`);
  if (result.exitCode !== 0 && opts.reject !== false) {
    const how = out.signal ? `was killed by ${out.signal}` : `failed (exit ${result.exitCode})`;
    throw new CommandError(argv, result, how);
  }
  return result;
}

/**
 * Starts argv in the background. stdout/stderr are collected (and appended to logFile if given);
 * with timeoutMs it is stopped after that long.
 */
export function spawnBackground(
  argv: readonly string[],
  opts: Omit<RunOptions, 'reject'> & { logFile?: string } = {},
): Background {
  if (argv.length === 0) throw new Error('spawnBackground: empty argv');
  const p = $({
    quiet: true,
    nothrow: true,
    env: envOf(opts.env),
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(opts.input === undefined ? {} : { input: opts.input }),
  })`exec ${argv}`;
  const pid = p.pid;
  if (pid === undefined) throw new Error(`could not start ${describeArgv(argv)}`);

  let output = '';
  let done = false;
  const listeners = new Set<() => void>();
  const log: WriteStream | undefined = opts.logFile
    ? createWriteStream(opts.logFile, { flags: 'a' })
    : undefined;
  log?.on('error', () => {}); // a broken log file must not crash the test run
  const onData = (chunk: Buffer | string): void => {
    const s = chunk.toString();
    output += s;
    if (output.length > MAX_OUTPUT) output = output.slice(-MAX_OUTPUT);
    log?.write(s);
    for (const l of [...listeners]) l();
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);

  const exited: Promise<number | null> = Promise.resolve(
    p.then(
      (o): number | null => o.exitCode,
      (): number | null => null,
    ),
  ).then((code) => {
    done = true;
    log?.end();
    for (const l of [...listeners]) l();
    return code;
  });

  const waitFor = (pattern: RegExp, timeoutMs = 10_000): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const re = new RegExp(pattern.source, pattern.flags.replace('g', '').replace('y', ''));
      const check = (): boolean => {
        const m = re.exec(output);
        if (m) {
          const start = output.lastIndexOf('\n', m.index) + 1;
          const endNl = output.indexOf('\n', m.index + m[0].length);
          finish();
          resolve(output.slice(start, endNl === -1 ? undefined : endNl));
          return true;
        }
        if (done) {
          finish();
          reject(
            new Error(`${describeArgv(argv)} exited before printing ${pattern}; output:\n${tail(output)}`),
          );
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${pattern} from ${describeArgv(argv)}; output:\n${tail(output)}`,
          ),
        );
      }, timeoutMs);
      const listener = (): void => void check();
      const finish = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
      };
      listeners.add(listener);
      check();
    });

  const stop = async (): Promise<void> => {
    if (done) return;
    kill(pid, 'SIGTERM');
    let t: NodeJS.Timeout | undefined;
    const graceful = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((r) => (t = setTimeout(() => r(false), STOP_GRACE_MS))),
    ]);
    clearTimeout(t);
    if (!graceful) {
      kill(pid, 'SIGKILL');
      await exited;
    }
  };

  if (opts.timeoutMs !== undefined) {
    // A bounded background process: stopped when its time is up.
    const limit = setTimeout(() => void stop(), opts.timeoutMs);
    void exited.then(() => clearTimeout(limit));
  }

  return { pid, output: () => output, waitFor, stop, exited };
}
