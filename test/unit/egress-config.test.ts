import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { ConfigError, parseConfigText, resolveConfig } from '../../dataplane/config.js';
import { resolveEgressProxy } from '../../dataplane/egress/config.js';
import { createEgressProxies } from '../../dataplane/egress/egress-proxies.js';
import {
  describeProxy,
  parseProxyUrl,
  proxyAuthorization,
  ProxyUrlError,
} from '../../dataplane/egress/proxy-url.js';
import { parseConnectivityServiceKey } from '../../dataplane/egress/service-key.js';

const KEY = {
  clientid: 'sb-connectivity!b7',
  clientsecret: 'cp-Secret+1/=',
  url: 'https://tenant.authentication.example.test',
  onpremise_proxy_host: 'connectivity-proxy.kyma-system.svc',
  onpremise_proxy_http_port: '20003',
  onpremise_socks5_proxy_port: '20004',
};

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

function keyFile(content: unknown): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'detour-cpkey-'));
  const file = join(dir, 'cp-key.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return { dir, file };
}

describe('connectivity service key', () => {
  test('SAP fields: client credentials, token endpoint at {url}/oauth/token, proxy host and ports (strings)', () => {
    expect(parseConnectivityServiceKey(JSON.stringify(KEY), 'cp-key.json')).toEqual({
      clientId: 'sb-connectivity!b7',
      clientSecret: 'cp-Secret+1/=',
      tokenUrl: 'https://tenant.authentication.example.test/oauth/token',
      proxyHost: 'connectivity-proxy.kyma-system.svc',
      httpPort: 20003,
      socks5Port: 20004,
    });
  });

  test('token_service_url wins over url; an /oauth/token path is kept; a binding wrapper is accepted', () => {
    const key = { ...KEY, token_service_url: 'https://t.example.test/oauth/token' };
    expect(parseConnectivityServiceKey(JSON.stringify({ credentials: key }), 'k').tokenUrl).toBe(
      'https://t.example.test/oauth/token',
    );
  });

  test.each([
    ['{', 'cp-key.json: not valid JSON (expected a connectivity service key)'],
    ['[]', 'cp-key.json: expected a JSON object (a connectivity service key)'],
    [
      JSON.stringify({ url: 'https://a.example.test' }),
      'cp-key.json: "clientid" is missing; "clientsecret" is missing',
    ],
    [
      JSON.stringify({ clientid: 'c', certificate: 'x', url: 'https://a.example.test' }),
      'cp-key.json: X.509 service keys (certificate/key) are not supported yet; create a key with "credential-type": "binding-secret"',
    ],
    [
      JSON.stringify({ ...KEY, url: undefined }),
      'cp-key.json: "token_service_url" or "url" is missing (the token service)',
    ],
    [
      JSON.stringify({ ...KEY, url: 'ftp://x' }),
      'cp-key.json: "token_service_url"/"url" is not an http(s) URL',
    ],
    [
      JSON.stringify({ ...KEY, onpremise_proxy_http_port: '70000' }),
      'cp-key.json: "onpremise_proxy_http_port" must be a port 1-65535',
    ],
  ])('key error: %#', (text, message) => {
    let thrown: Error | undefined;
    try {
      parseConnectivityServiceKey(text, 'cp-key.json');
    } catch (error) {
      thrown = error as Error;
    }
    expect(thrown?.message).toBe(message);
    expect(thrown?.message).not.toContain('cp-Secret');
  });
});

describe('connectivityProxy section', () => {
  test('a section naming only the key takes host and ports from it', () => {
    const { dir } = keyFile(KEY);
    const file = parseConfigText('connectivityProxy: { serviceKey: ./cp-key.json }', 'detour.yaml');
    const config = resolveConfig(file, {}, dir, {});
    expect(config.connectivityProxy).toEqual({
      host: 'connectivity-proxy.kyma-system.svc',
      httpPort: 20003,
      socks5Port: 20004,
      auth: {
        kind: 'serviceKey',
        file: join(dir, 'cp-key.json'),
        clientId: 'sb-connectivity!b7',
        clientSecret: 'cp-Secret+1/=',
        tokenUrl: 'https://tenant.authentication.example.test/oauth/token',
      },
    });
  });

  test('the section wins over the key; defaults 20003/20004 when neither says', () => {
    const { dir } = keyFile({
      ...KEY,
      onpremise_proxy_http_port: undefined,
      onpremise_socks5_proxy_port: undefined,
    });
    const file = parseConfigText(
      'connectivityProxy: { host: cp.example.test, serviceKey: cp-key.json }',
      'detour.yaml',
    );
    expect(resolveConfig(file, {}, dir, {}).connectivityProxy).toMatchObject({
      host: 'cp.example.test',
      httpPort: 20003,
      socks5Port: 20004,
    });
  });

  test('trusted mode: no key, no proxy authorization', () => {
    const file = parseConfigText(
      'connectivityProxy: { host: 192.0.2.10, httpPort: 8080, trusted: true }',
      'd.yaml',
    );
    expect(resolveConfig(file, {}, '.', {}).connectivityProxy).toEqual({
      host: '192.0.2.10',
      httpPort: 8080,
      socks5Port: 20004,
      auth: { kind: 'trusted' },
    });
  });

  test.each([
    [
      'connectivityProxy: { host: cp }',
      'd.yaml: connectivityProxy: set serviceKey (a connectivity service key: tokens for Proxy-Authorization) or trusted: true (no proxy authorization)',
    ],
    [
      'connectivityProxy: { host: cp, trusted: true, serviceKey: k.json }',
      'd.yaml: connectivityProxy: serviceKey and trusted: true exclude each other (trusted means no proxy authorization)',
    ],
    ['connectivityProxy: { trusted: true }', 'd.yaml: connectivityProxy.host: required with trusted: true'],
    [
      'connectivityProxy: { trusted: true, host: cp, httpPort: 0 }',
      'd.yaml: connectivityProxy.httpPort: expected an integer 1-65535',
    ],
    [
      'connectivityProxy: { trusted: yes, host: cp }',
      'd.yaml: connectivityProxy.trusted: expected true or false',
    ],
    [
      'connectivityProxy: { trusted: true, host: cp, user: x }',
      'd.yaml: connectivityProxy: unknown key "user"',
    ],
  ])('%s', (text, message) => {
    expect(configError(() => parseConfigText(text, 'd.yaml'))).toBe(message);
  });

  test('an unreadable or incomplete key file is named with the field', () => {
    const file = parseConfigText('connectivityProxy: { serviceKey: ./missing.json }', 'd.yaml');
    expect(configError(() => resolveConfig(file, {}, '/nonexistent', {}))).toBe(
      'connectivityProxy.serviceKey: /nonexistent/missing.json: cannot read: ENOENT',
    );
    const { dir } = keyFile({ ...KEY, onpremise_proxy_host: undefined });
    const noHost = parseConfigText('connectivityProxy: { serviceKey: cp-key.json }', 'd.yaml');
    expect(configError(() => resolveConfig(noHost, {}, dir, {}))).toBe(
      `connectivityProxy.host: required (the service key ${join(dir, 'cp-key.json')} has no "onpremise_proxy_host")`,
    );
  });
});

describe('proxy URLs', () => {
  test('http and socks5, default ports, credentials decoded, no scheme means http', () => {
    expect(parseProxyUrl('http://u%40corp:p%3Ass@proxy.corp:3128')).toEqual({
      kind: 'http',
      host: 'proxy.corp',
      port: 3128,
      username: 'u@corp',
      password: 'p:ss',
    });
    expect(parseProxyUrl('proxy.corp')).toEqual({ kind: 'http', host: 'proxy.corp', port: 80 });
    expect(parseProxyUrl('socks5h://[2001:db8::1]')).toEqual({
      kind: 'socks5',
      host: '2001:db8::1',
      port: 1080,
    });
    expect(parseProxyUrl('http://proxy.corp:3128/')).toMatchObject({ port: 3128 });
  });

  test.each([
    ['https://proxy.corp:443', 'TLS to the proxy (https://) is not supported'],
    ['socks4://proxy.corp', 'SOCKS4 is not supported; use socks5://'],
    ['ftp://proxy.corp', 'scheme "ftp" is not a proxy scheme; use http:// or socks5://'],
    [
      'http://u:topsecret@proxy.corp:3128/path',
      '"http://u:<redacted>@proxy.corp:3128/path" must not have a path',
    ],
    ['http://u:topsecret@', 'is not a valid URL'],
  ])('%s is refused without showing the password', (text, message) => {
    let thrown: Error | undefined;
    try {
      parseProxyUrl(text);
    } catch (error) {
      thrown = error as Error;
    }
    expect(thrown).toBeInstanceOf(ProxyUrlError);
    expect(thrown?.message).toContain(message);
    expect(thrown?.message).not.toContain('topsecret');
  });

  test('describeProxy redacts the password; Proxy-Authorization is Basic user:password', () => {
    const p = parseProxyUrl('http://alice:s3cret@proxy.corp:3128');
    expect(describeProxy(p)).toBe('http://alice:<redacted>@proxy.corp:3128');
    expect(proxyAuthorization(p)).toBe(`Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
    expect(proxyAuthorization(parseProxyUrl('socks5://alice:s3cret@s:1080'))).toBeUndefined();
  });
});

describe('egressProxy: config > environment', () => {
  const env = {
    HTTP_PROXY: 'http://env-http:3128',
    https_proxy: 'http://env-https:3128',
    HTTPS_PROXY: 'http://ignored-upper:3128',
    ALL_PROXY: 'socks5://env-all:1080',
    NO_PROXY: '.corp.example, 10.0.0.0/8 localhost',
  };

  test('from the environment: per target scheme, lower case first, ALL_PROXY as fallback and for TCP', () => {
    const s = resolveEgressProxy(undefined, env);
    expect(s.http).toMatchObject({ host: 'env-http' });
    expect(s.https).toMatchObject({ host: 'env-https' });
    expect(s.tcp).toMatchObject({ kind: 'socks5', host: 'env-all' });
    expect(s.sources).toEqual({
      http: 'HTTP_PROXY',
      https: 'https_proxy',
      tcp: 'ALL_PROXY',
      noProxy: 'NO_PROXY',
    });
    expect(s.noProxy).toEqual(['.corp.example', '10.0.0.0/8', 'localhost']);
  });

  test('the config wins: http for HTTP targets, socks5 for TCP; noProxy replaces NO_PROXY', () => {
    const file = parseConfigText(
      'egressProxy:\n  http: http://u:p@cfg-http:3128\n  socks5: socks5://cfg-socks:1080\n  noProxy: [internal.example]\n',
      'd.yaml',
    );
    const s = resolveConfig(file, {}, '.', env).egressProxy;
    expect(s.http).toMatchObject({ host: 'cfg-http', username: 'u', password: 'p' });
    expect(s.https).toMatchObject({ host: 'cfg-http' });
    expect(s.tcp).toMatchObject({ host: 'cfg-socks' });
    expect(s.noProxy).toEqual(['internal.example']);
    expect(s.sources).toEqual({ http: 'config', https: 'config', tcp: 'config', noProxy: 'config' });
  });

  test('only an HTTP proxy configured: TCP goes by CONNECT through it; fromEnvironment: false ignores the variables', () => {
    const file = parseConfigText('egressProxy: { http: proxy.corp:3128, fromEnvironment: false }', 'd.yaml');
    const s = resolveConfig(file, {}, '.', env).egressProxy;
    expect(s.tcp).toMatchObject({ kind: 'http', host: 'proxy.corp' });
    expect(s.noProxy).toEqual([]);
    expect(
      resolveConfig(parseConfigText('egressProxy: { fromEnvironment: false }', 'd'), {}, '.', env)
        .egressProxy,
    ).toMatchObject({
      sources: {},
      noProxy: [],
    });
  });

  test('unusable environment values are skipped with a warning, never the password', () => {
    const s = resolveEgressProxy(undefined, {
      HTTPS_PROXY: 'https://u:pw-secret@p:443',
      NO_PROXY: 'a.example,10.0.0.0/99',
    });
    expect(s.https).toBeUndefined();
    expect(s.noProxy).toEqual(['a.example']);
    expect(s.warnings.join('\n')).toContain('HTTPS_PROXY ignored: TLS to the proxy');
    expect(s.warnings.join('\n')).toContain('NO_PROXY: entry "10.0.0.0/99": prefix must be 0-32 ignored');
    expect(s.warnings.join('\n')).not.toContain('pw-secret');
  });

  test.each([
    [
      'egressProxy: { http: "https://u:pw-secret@p" }',
      'd.yaml: egressProxy.http: TLS to the proxy (https://) is not supported',
    ],
    [
      'egressProxy: { noProxy: ["10.0.0.0/40"] }',
      'd.yaml: egressProxy.noProxy: "10.0.0.0/40": prefix must be 0-32',
    ],
    ['egressProxy: { socks: "socks5://s" }', 'd.yaml: egressProxy: unknown key "socks"'],
  ])('config errors name the field: %s', (text, message) => {
    const m = configError(() => parseConfigText(text, 'd.yaml'));
    expect(m).toContain(message);
    expect(m).not.toContain('pw-secret');
  });

  test('/config description: proxies redacted, where each came from', () => {
    const proxies = createEgressProxies(
      resolveEgressProxy({ http: 'http://alice:s3cret@proxy.corp:3128' }, { NO_PROXY: '*.corp.example' }),
    );
    const text = JSON.stringify(proxies.describe());
    expect(text).not.toContain('s3cret');
    expect(proxies.describe()).toEqual({
      http: { proxy: 'http://alice:<redacted>@proxy.corp:3128', from: 'config' },
      https: { proxy: 'http://alice:<redacted>@proxy.corp:3128', from: 'config' },
      tcp: { proxy: 'http://alice:<redacted>@proxy.corp:3128', from: 'config' },
      noProxy: ['*.corp.example'],
      noProxyFrom: 'NO_PROXY',
    });
    expect(proxies.forTarget('api.corp.example', 443, 'https')).toBeUndefined();
    expect(proxies.forTarget('api.example.test', 443, 'https')).toMatchObject({ host: 'proxy.corp' });
  });
});
