// The error every bench parser throws: names the tool, what was missing or wrong, and shows the
// start of the output so a changed tool version is easy to spot.
export class ToolOutputError extends Error {
  constructor(tool: string, problem: string, output: string) {
    const excerpt = output.trim().slice(0, 400) || '(empty output)';
    super(`${tool}: ${problem}; output:\n${excerpt}`);
    this.name = 'ToolOutputError';
  }
}
