// EgressProxies: the corporate proxy (or none) a connection to an Internet target uses.
import type { EgressProxySettings } from './config.js';
import { parseNoProxy } from './no-proxy.js';
import { describeProxy } from './proxy-url.js';
import type { EgressProxies, EgressProxy } from './types.js';

export interface EgressProxiesWithConfig extends EgressProxies {
  /** for /config: proxies with the password redacted, NO_PROXY entries, where each came from */
  describe(): Record<string, unknown>;
}

export function createEgressProxies(settings: EgressProxySettings): EgressProxiesWithConfig {
  const { noProxy } = parseNoProxy(settings.noProxy);
  const byScheme: Record<'http' | 'https' | 'tcp', EgressProxy | undefined> = {
    http: settings.http,
    https: settings.https,
    tcp: settings.tcp,
  };
  return {
    forTarget(host, port, scheme) {
      const proxy = byScheme[scheme];
      if (!proxy || noProxy.matches(host, port)) return undefined;
      return proxy;
    },
    describe() {
      const show = (scheme: 'http' | 'https' | 'tcp') => {
        const proxy = byScheme[scheme];
        return proxy ? { proxy: describeProxy(proxy), from: settings.sources[scheme] } : 'direct';
      };
      return {
        http: show('http'),
        https: show('https'),
        tcp: show('tcp'),
        noProxy: settings.noProxy,
        ...(settings.sources.noProxy ? { noProxyFrom: settings.sources.noProxy } : {}),
      };
    },
  };
}

/** The proxy for an http(s) URL (its host, its port or 80/443, its scheme), or undefined: direct. */
export function proxyForUrl(proxies: EgressProxies | undefined, url: URL): EgressProxy | undefined {
  const https = url.protocol === 'https:';
  return proxies?.forTarget(
    url.hostname.replace(/^\[|\]$/g, ''),
    Number(url.port || (https ? 443 : 80)),
    https ? 'https' : 'http',
  );
}
