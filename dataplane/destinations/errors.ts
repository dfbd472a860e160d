// One problem with one destination (or with a whole source). `message` is the bare problem; String(error)
// is the full line: `destinations.yaml: destination "orders": URL: loopback targets are not allowed (127.0.0.1)`.
// Messages never contain secret values: callers only ever put property names and non-secret values in.

export class DestinationError {
  constructor(
    /** where the destination came from: a file path, `env destinations`, ... */
    readonly source: string,
    readonly message: string,
    /** the destination's Name when it has one */
    readonly destination?: string,
    /** the property the problem is about (SAP property name, e.g. `URL`, `URL.headers.x-key`) */
    readonly property?: string,
    /** 1-based position in the source's list, for entries without a usable Name */
    readonly index?: number,
  ) {}

  toString(): string {
    const parts = [this.source];
    if (this.destination !== undefined) parts.push(`destination ${quote(this.destination)}`);
    else if (this.index !== undefined) parts.push(`entry ${this.index}`);
    if (this.property !== undefined) parts.push(this.property);
    parts.push(this.message);
    return parts.join(': ');
  }

  toJSON(): string {
    return this.toString();
  }
}

/** Thrown by parseDestination: every problem found in one destination, not just the first. */
export class DestinationParseError extends Error {
  constructor(readonly errors: DestinationError[]) {
    super(errors.map(String).join('; '));
    this.name = 'DestinationParseError';
  }
}

/** A user-supplied, non-secret value for a message: quoted, control characters escaped, long ones cut. */
export function quote(value: string, max = 80): string {
  const cut = value.length > max ? `${value.slice(0, max)}...` : value;
  return JSON.stringify(cut);
}

/**
 * What is wrong with a JSON text, without quoting it: JSON.parse quotes the input in some messages
 * (`Unexpected token 'x', "sekret..." is not valid JSON`), and the input may hold secrets.
 */
export function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes('Unexpected end of JSON input')) return 'the text ends too early';
  if (message.startsWith('Unexpected token')) return 'unexpected character';
  return message.includes('"') ? 'syntax error' : message;
}
