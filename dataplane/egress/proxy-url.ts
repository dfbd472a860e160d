// Corporate proxy URLs (`http://user:pass@proxy.corp:3128`, `socks5://user:pass@socks.corp:1080`) as
// the dataplane config and HTTP_PROXY / HTTPS_PROXY / ALL_PROXY give them. Pure. Messages never
// contain the password: they show the URL with it replaced by `<redacted>`.
import type { EgressProxy } from './types.js';

const DEFAULT_PORTS: Record<EgressProxy['kind'], number> = { http: 80, socks5: 1080 };

/** Thrown for an unusable proxy URL; the message says what is wrong and never contains a password. */
export class ProxyUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyUrlError';
  }
}

/** The scheme a proxy URL's scheme stands for, or a reason it is not supported. */
function kindOf(scheme: string): EgressProxy['kind'] | { unsupported: string } {
  switch (scheme) {
    case 'http':
      return 'http';
    case 'socks5':
    case 'socks5h':
    case 'socks':
      return 'socks5';
    case 'https':
      return {
        unsupported:
          'TLS to the proxy (https://) is not supported; use http:// (CONNECT still carries TLS to https targets)',
      };
    case 'socks4':
    case 'socks4a':
      return { unsupported: 'SOCKS4 is not supported; use socks5://' };
    default:
      return { unsupported: `scheme "${scheme}" is not a proxy scheme; use http:// or socks5://` };
  }
}

/** `user:password@` with the password replaced, for messages about a URL that may not parse. */
function redactText(text: string): string {
  return text.replace(/^([a-z0-9+.-]+:\/\/)?([^@/]*?):[^@/]*@/i, '$1$2:<redacted>@');
}

/**
 * Parses a proxy URL. No scheme means http (curl's and Go's rule). Without a port: 80 for http,
 * 1080 for socks5. A path other than `/`, a query or a fragment is an error (a proxy has none).
 */
export function parseProxyUrl(text: string): EgressProxy {
  const trimmed = text.trim();
  if (trimmed === '') throw new ProxyUrlError('empty proxy URL');
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ProxyUrlError(`"${redactText(trimmed)}" is not a valid URL`);
  }
  const kind = kindOf(url.protocol.slice(0, -1).toLowerCase());
  if (typeof kind === 'object') throw new ProxyUrlError(kind.unsupported);
  if (!url.hostname) throw new ProxyUrlError(`"${redactText(trimmed)}" has no host`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash)
    throw new ProxyUrlError(`"${redactUrl(url)}" must not have a path, query or fragment`);
  const proxy: EgressProxy = {
    kind,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : DEFAULT_PORTS[kind],
  };
  if (url.username) proxy.username = decodeURIComponent(url.username);
  if (url.password) proxy.password = decodeURIComponent(url.password);
  return proxy;
}

function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = 'redacted';
  return copy.href.replace(':redacted@', ':<redacted>@');
}

/** For /config and logs: `http://user:<redacted>@proxy.corp:3128` (the user name is kept). */
export function describeProxy(proxy: EgressProxy): string {
  const host = proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host;
  const user =
    proxy.username !== undefined
      ? `${encodeURIComponent(proxy.username)}${proxy.password !== undefined ? ':<redacted>' : ''}@`
      : '';
  return `${proxy.kind}://${user}${host}:${proxy.port}`;
}

/** `Proxy-Authorization: Basic ...` for an HTTP proxy with credentials, else undefined. */
export function proxyAuthorization(proxy: EgressProxy): string | undefined {
  if (proxy.kind !== 'http' || proxy.username === undefined) return undefined;
  return `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`, 'utf8').toString('base64')}`;
}
