// Reading errors from Node and undici. Duck-typed: errors from another realm (Node's internals under a
// test runner's VM context) are not `instanceof Error` there.

interface ErrorLike {
  message: string;
  code?: unknown;
  cause?: unknown;
}

export function isErrorLike(value: unknown): value is ErrorLike {
  return typeof value === 'object' && value !== null && typeof (value as ErrorLike).message === 'string';
}

/** The error and its causes, outermost first (at most `depth`). */
export function errorChain(error: unknown, depth = 5): ErrorLike[] {
  const chain: ErrorLike[] = [];
  for (let e = error; isErrorLike(e) && chain.length < depth; e = e.cause) chain.push(e);
  return chain;
}

/** The most specific code in the chain (undici's generic UND_ERR_SOCKET only when there is no other). */
export function errorCode(error: unknown): string | undefined {
  const codes = errorChain(error)
    .map((e) => e.code)
    .filter((c): c is string => typeof c === 'string');
  return codes.find((c) => c !== 'UND_ERR_SOCKET') ?? codes[0];
}

/** The distinct messages of the chain joined with ": ", at most 300 characters. */
export function errorText(error: unknown): string {
  const messages: string[] = [];
  for (const e of errorChain(error, 3))
    if (e.message && !messages.includes(e.message)) messages.push(e.message);
  return (messages.length > 0 ? messages.join(': ') : String(error)).slice(0, 300);
}
