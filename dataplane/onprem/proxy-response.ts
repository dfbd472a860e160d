// Is a response the connectivity proxy's own answer (rather than the backend's, passed through)?
// 407 always is (the backend never sees Proxy-Authorization). A 405 or 502/503/504 is the proxy's when it
// says so: `x-error-origin: Connectivity Proxy` (SAP's origin name) or a `Server` header naming the
// connectivity proxy. A backend's own 503 or 405 passes through to the app unchanged.
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
  return (
    text('x-error-origin').includes('connectivity proxy') || /connectivity[- ]?proxy/.test(text('server'))
  );
}
