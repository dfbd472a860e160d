// Running the firewall tools: one place for --verbose echo, stdin, retries and error text.
import { execa } from 'execa';

export interface RunContext {
  verbose: boolean;
  maxRetries: number;
  sleepBetweenRetriesMs: number;
  log: (line: string) => void;
  /** no CAP_NET_ADMIN (only --dry-run gets this far): current rules cannot be read, plan from none */
  unprivileged?: boolean;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function run(
  ctx: RunContext,
  file: string,
  args: string[],
  input?: string,
): Promise<CommandResult> {
  if (ctx.verbose) {
    ctx.log(`$ ${[file, ...args].join(' ')}${input ? ` <<EOF\n${input}EOF` : ''}`);
  }
  const result = await execa(file, args, { input, reject: false, stripFinalNewline: false });
  if (result.failed && result.exitCode === undefined) {
    return { exitCode: 127, stdout: '', stderr: `${file}: ${result.shortMessage ?? 'could not be run'}` };
  }
  return { exitCode: result.exitCode ?? 1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** Runs a changing command, retrying on failure (e.g. the xtables lock held by someone else). */
export async function runWithRetries(
  ctx: RunContext,
  file: string,
  args: string[],
  input?: string,
): Promise<CommandResult> {
  let last: CommandResult | undefined;
  for (let attempt = 0; attempt <= ctx.maxRetries; attempt++) {
    if (attempt > 0) {
      ctx.log(
        `retrying ${file} (attempt ${attempt + 1} of ${ctx.maxRetries + 1}) after: ${last?.stderr.trim()}`,
      );
      await new Promise((resolve) => setTimeout(resolve, ctx.sleepBetweenRetriesMs));
    }
    last = await run(ctx, file, args, input);
    if (last.exitCode === 0) return last;
  }
  return last!;
}

export async function which(file: string): Promise<string | undefined> {
  const result = await execa('sh', ['-c', `command -v "$1"`, 'sh', file], { reject: false });
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}
