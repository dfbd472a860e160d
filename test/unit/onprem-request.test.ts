import { describe, expect, test } from '@jest/globals';
import { onPremiseRequest, principalPropagationProblem, userJwt } from '../../dataplane/onprem/request.js';
import { isConnectivityProxyAnswer } from '../../dataplane/onprem/proxy-response.js';
import { rewriteRequest, type HeaderList } from '../../dataplane/http/rewrite.js';
import { upstreamVia, wireRequest } from '../../dataplane/http/upstream-route.js';
import { parseProxyUrl } from '../../dataplane/egress/proxy-url.js';
import { createEgressProxies } from '../../dataplane/egress/egress-proxies.js';
import { resolveEgressProxy } from '../../dataplane/egress/config.js';
import { destination } from './http-harness.js';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln';
const onPremise = (over: Parameters<typeof destination>[0] = {}) =>
  destination({
    name: 'erp',
    proxyType: 'OnPremise',
    url: new URL('http://erp.virtual:44300/sap/opu'),
    locationId: 'loc-a',
    ...over,
  });

function build(
  d: ReturnType<typeof onPremise>,
  app: HeaderList,
  authHeaders: HeaderList = [],
  token = 'cp-token',
) {
  const up = rewriteRequest(
    d,
    { method: 'GET', url: '/orders?x=1', headers: app },
    { authHeaders, requestId: 'r1' },
  );
  return onPremiseRequest(d, up, app, token);
}

const names = (headers: HeaderList) => headers.map(([n]) => n.toLowerCase());
const value = (headers: HeaderList, name: string) =>
  headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

describe('the request to the connectivity proxy', () => {
  test('absolute form, Host = virtual host, Proxy-Authorization: Bearer, the location id of the destination', () => {
    const r = build(onPremise(), [['Accept', 'application/json']]);
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(r.path).toBe('http://erp.virtual:44300/sap/opu/orders?x=1');
    expect(value(r.headers, 'host')).toEqual(['erp.virtual:44300']);
    expect(value(r.headers, 'proxy-authorization')).toEqual(['Bearer cp-token']);
    expect(value(r.headers, 'sap-connectivity-scc-location_id')).toEqual(['loc-a']);
    expect(r.identity).toBeUndefined();
  });

  test("the request's own location header wins; trusted mode sends no Proxy-Authorization", () => {
    const up = rewriteRequest(
      onPremise(),
      { method: 'GET', url: '/', headers: [['SAP-Connectivity-SCC-Location_ID', 'loc-app']] },
      {},
    );
    const r = onPremiseRequest(onPremise(), up, [], undefined);
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(value(r.headers, 'sap-connectivity-scc-location_id')).toEqual(['loc-app']);
    expect(names(r.headers)).not.toContain('proxy-authorization');
  });

  test('no location header without a CloudConnectorLocationId', () => {
    const r = build(onPremise({ locationId: undefined }), []);
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(names(r.headers)).not.toContain('sap-connectivity-scc-location_id');
  });

  test("the destination's Basic authentication goes to the backend as for Internet destinations", () => {
    const r = build(
      onPremise({ authentication: 'BasicAuthentication' }),
      [['Authorization', 'Bearer app']],
      [['authorization', 'Basic dTpw']],
    );
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(value(r.headers, 'authorization')).toEqual(['Basic dTpw']);
    expect(value(r.headers, 'proxy-authorization')).toEqual(['Bearer cp-token']);
  });

  test("an app's own Proxy-Authorization and SAP-Connectivity-*Authentication never pass", () => {
    const r = build(onPremise(), [
      ['Proxy-Authorization', 'Bearer forged'],
      ['SAP-Connectivity-Authentication', 'Bearer someone-else'],
      ['SAP-Connectivity-Technical-Authentication', 'Bearer forged-tech'],
    ]);
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(value(r.headers, 'proxy-authorization')).toEqual(['Bearer cp-token']);
    expect(names(r.headers)).not.toContain('sap-connectivity-authentication');
    expect(names(r.headers)).not.toContain('sap-connectivity-technical-authentication');
  });
});

describe('principal propagation', () => {
  const pp = onPremise({ authentication: 'PrincipalPropagation' });

  test('the user JWT goes as SAP-Connectivity-Authentication, Authorization is not forwarded, the identity is the JWT', () => {
    const r = build(pp, [
      ['authorization', `Bearer ${JWT}`],
      ['x-app', '1'],
    ]);
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(value(r.headers, 'SAP-Connectivity-Authentication')).toEqual([`Bearer ${JWT}`]);
    expect(names(r.headers)).not.toContain('authorization');
    expect(value(r.headers, 'proxy-authorization')).toEqual(['Bearer cp-token']);
    expect(value(r.headers, 'x-app')).toEqual(['1']);
    expect(r.identity).toBe(`user ${JWT}`);
    const other = build(pp, [['authorization', 'Bearer other.jwt.x']]);
    expect('identity' in other && other.identity).not.toBe(r.identity);
  });

  test.each([
    ['no Authorization', []],
    ['Basic instead of Bearer', [['Authorization', 'Basic dTpw']]],
    [
      'two Authorization headers',
      [
        ['Authorization', `Bearer ${JWT}`],
        ['Authorization', 'Bearer b.c.d'],
      ],
    ],
    ['an empty bearer', [['Authorization', 'Bearer ']]],
  ] as [string, HeaderList][])('%s → 400 with a clear message', (_label, app) => {
    const r = build(pp, app);
    expect(r).toEqual({
      missingUserToken:
        "Destination 'erp' uses PrincipalPropagation: send the user's JWT as 'Authorization: Bearer <token>' (exactly one Authorization header).",
    });
    expect(principalPropagationProblem(pp, app)).toBe((r as { missingUserToken: string }).missingUserToken);
  });

  test('userJwt: bearer in any case, surrounding blanks', () => {
    expect(userJwt([['AUTHORIZATION', `bearer  ${JWT} `]])).toBe(JWT);
    expect(principalPropagationProblem(onPremise(), [])).toBeUndefined();
  });
});

describe('technical user propagation', () => {
  test("the authenticator's header goes to the proxy, the identity is that token; an app's forged one is replaced", () => {
    const d = onPremise({ authentication: 'OAuth2TechnicalUserPropagation' });
    const r = build(
      d,
      [
        ['SAP-Connectivity-Technical-Authentication', 'Bearer forged'],
        ['Authorization', 'Bearer app'],
      ],
      [['sap-connectivity-technical-authentication', 'Bearer tech-1']],
    );
    if ('missingUserToken' in r) throw new Error('unexpected');
    expect(value(r.headers, 'sap-connectivity-technical-authentication')).toEqual(['Bearer tech-1']);
    expect(r.identity).toBe('technical Bearer tech-1');
    expect(names(r.headers)).not.toContain('authorization');
  });
});

describe('the way to the target', () => {
  const proxies = createEgressProxies(
    resolveEgressProxy({ http: 'http://alice:pw@proxy.corp:3128', noProxy: ['direct.example'] }, {}),
  );

  test('OnPremise needs a connectivity proxy, and an http URL', () => {
    expect(upstreamVia(onPremise(), {})).toEqual({
      error: 'it is ProxyType OnPremise, but the dataplane has no connectivityProxy configured (detour.yaml)',
    });
    const cp = { host: 'cp.example.test', httpPort: 20003, socks5Port: 20004, token: async () => 't' };
    expect(upstreamVia(onPremise(), { connectivityProxy: cp })).toEqual({
      kind: 'connectivity-proxy',
      origin: 'http://cp.example.test:20003',
      endpoint: 'cp.example.test:20003',
    });
    expect(
      upstreamVia(onPremise({ url: new URL('https://erp.virtual') }), { connectivityProxy: cp }),
    ).toHaveProperty('error');
  });

  test('Internet: the egress proxy unless NO_PROXY matches; http targets in absolute form with Basic', () => {
    const d = destination({ url: new URL('http://api.example.test:8080/v1') });
    const via = upstreamVia(d, { egressProxies: proxies });
    expect(via).toMatchObject({ kind: 'http-proxy', endpoint: 'http://alice:<redacted>@proxy.corp:3128' });
    const up = rewriteRequest(d, { method: 'GET', url: '/x', headers: [] }, {});
    const wire = wireRequest(d, via as never, up, [], undefined);
    expect(wire.path).toBe('http://api.example.test:8080/v1/x');
    expect(value(wire.headers, 'proxy-authorization')).toEqual([
      `Basic ${Buffer.from('alice:pw').toString('base64')}`,
    ]);
    expect(
      upstreamVia(destination({ url: new URL('https://direct.example') }), { egressProxies: proxies }),
    ).toEqual({
      kind: 'direct',
    });
  });

  test('https targets through the HTTP proxy keep origin form (CONNECT tunnel), no Proxy-Authorization to the target', () => {
    const d = destination({ url: new URL('https://api.example.test/v1') });
    const via = upstreamVia(d, { egressProxies: proxies });
    const up = rewriteRequest(d, { method: 'GET', url: '/x', headers: [] }, {});
    const wire = wireRequest(d, via as never, up, [], undefined);
    expect(wire.path).toBe('/v1/x');
    expect(names(wire.headers)).not.toContain('proxy-authorization');
    expect(parseProxyUrl('socks5://s:1080')).toMatchObject({ kind: 'socks5' });
  });
});

describe("the connectivity proxy's own answers", () => {
  test('407 always; 405/503 only when the proxy says so', () => {
    expect(isConnectivityProxyAnswer(407, {})).toBe(true);
    expect(isConnectivityProxyAnswer(503, {})).toBe(false);
    expect(isConnectivityProxyAnswer(405, { 'content-type': 'text/html' })).toBe(false);
    expect(isConnectivityProxyAnswer(503, { 'content-type': 'text/plain', 'content-length': '60' })).toBe(
      true,
    );
    expect(isConnectivityProxyAnswer(503, { 'content-type': 'text/plain', 'content-length': '90000' })).toBe(
      false,
    );
    expect(isConnectivityProxyAnswer(503, { 'content-type': 'application/json' })).toBe(false);
    expect(isConnectivityProxyAnswer(503, { 'x-error-origin': 'Connectivity Proxy' })).toBe(true);
    expect(isConnectivityProxyAnswer(405, { server: 'connectivity-proxy' })).toBe(true);
    expect(isConnectivityProxyAnswer(200, { server: 'connectivity-proxy' })).toBe(false);
  });
});
