// Is a response the connectivity proxy's own answer (rather than the backend's, passed through)?
// - 407 always is: the backend never sees Proxy-Authorization.
// - 405 (CONNECT / https refused) and 502/503/504 (no Cloud Connector for the location, disconnected,
//   backend unreachable) are the proxy's when it says so (`x-error-origin: Connectivity Proxy`, SAP's
//   origin name, or a `Server` header naming the connectivity proxy), or when they come as a short
//   `text/plain` body, which is how the proxy answers. A backend's own 503 or 405 with an HTML or JSON
//   body passes through unchanged; a backend's plain-text 503 is reported as the proxy's (same status,
//   its text in x-error-message).
export const PROXY_ANSWER_MAX_BYTES = 4096;

export function isConnectivityProxyAnswer(
  status: number,
  headers: Record<string, string | string[] | undefined>,
): boolean {
  if (status === 407) return true;
  if (status !== 405 && status !== 502 && status !== 503 && status !== 504) return false;
  const text = (name: string): string => {
    const value = headers[name];
    return (Array.isArray(value) ? value.join(',') : (value ?? '')).toLowerCase();
  };
  if (text('x-error-origin').includes('connectivity proxy') || /connectivity[- ]?proxy/.test(text('server')))
    return true;
  const length = Number(text('content-length') || NaN);
  return (
    text('content-type').startsWith('text/plain') &&
    (Number.isNaN(length) || length <= PROXY_ANSWER_MAX_BYTES)
  );
}
