// Applies steps in order; if one fails, undoes the ones already applied (newest first), so a failure
// half way leaves the rules as they were and says what failed.
import { ApplyError } from './errors.js';
import type { Plan, Step } from './backend/types.js';

export async function applySteps(steps: Step[], log: (line: string) => void): Promise<void> {
  const done: Step[] = [];
  for (const step of steps) {
    try {
      await step.apply();
      done.push(step);
    } catch (error) {
      const problems = await rollback(done, log);
      const outcome = problems.length
        ? `rollback also failed (${problems.join('; ')}): check the rules by hand`
        : done.length
          ? 'everything applied before it was rolled back; nothing changed'
          : 'nothing changed';
      throw new ApplyError(`${(error as Error).message} — ${outcome}`);
    }
  }
}

async function rollback(done: Step[], log: (line: string) => void): Promise<string[]> {
  const problems: string[] = [];
  for (const step of [...done].reverse()) {
    try {
      log(`rolling back ${step.describe}`);
      await step.rollback();
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  return problems;
}

/** Applies the plans, verifies the result, and rolls everything back if verification fails. */
export async function applyAndVerify(
  plans: Plan[],
  extraSteps: Step[],
  log: (line: string) => void,
): Promise<void> {
  const steps = [...plans.flatMap((p) => p.steps), ...extraSteps];
  await applySteps(steps, log);
  for (const plan of plans) {
    const problem = await plan.verify();
    if (problem) {
      const problems = await rollback(steps, log);
      throw new ApplyError(
        `verification failed: ${problem} — ${problems.length ? `rollback failed too: ${problems.join('; ')}` : 'rolled back, nothing changed'}`,
      );
    }
  }
}
