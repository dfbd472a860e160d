import { describe, expect, test } from '@jest/globals';
import { parseNoProxy, splitNoProxy } from '../../dataplane/egress/no-proxy.js';

function matcher(entries: string) {
  const { noProxy, problems } = parseNoProxy(splitNoProxy(entries));
  expect(problems).toEqual([]);
  return (host: string, port = 443) => noProxy.matches(host, port);
}

describe('NO_PROXY', () => {
  test('nothing configured matches nothing; * matches everything', () => {
    expect(matcher('')('a.example')).toBe(false);
    expect(matcher('*')('a.example')).toBe(true);
    expect(matcher('*')('192.0.2.1', 80)).toBe(true);
  });

  test('a domain matches itself and its subdomains, with or without a leading dot or *.; case and trailing dot ignored', () => {
    for (const entry of ['corp.example', '.corp.example', '*.corp.example', 'CORP.example.']) {
      const m = matcher(entry);
      expect(m('corp.example')).toBe(true);
      expect(m('api.corp.example')).toBe(true);
      expect(m('a.b.CORP.EXAMPLE.')).toBe(true);
      expect(m('notcorp.example')).toBe(false);
      expect(m('corp.example.org')).toBe(false);
    }
  });

  test('host:port entries only match that port', () => {
    const m = matcher('api.example:8443, [2001:db8::5]:443, 192.0.2.9:80');
    expect(m('api.example', 8443)).toBe(true);
    expect(m('api.example', 443)).toBe(false);
    expect(m('2001:db8::5', 443)).toBe(true);
    expect(m('[2001:db8::5]', 443)).toBe(true);
    expect(m('2001:db8::5', 80)).toBe(false);
    expect(m('192.0.2.9', 80)).toBe(true);
    expect(m('192.0.2.9', 81)).toBe(false);
  });

  test('addresses and CIDRs (IPv4, IPv6, v4-mapped); host bits in a range are ignored', () => {
    const m = matcher('10.0.0.0/8 192.0.2.7 2001:db8:1::/48,198.51.100.77/24 ::1');
    expect(m('10.200.3.4')).toBe(true);
    expect(m('11.0.0.1')).toBe(false);
    expect(m('192.0.2.7')).toBe(true);
    expect(m('192.0.2.8')).toBe(false);
    expect(m('2001:db8:1:ffff::1')).toBe(true);
    expect(m('2001:db8:2::1')).toBe(false);
    expect(m('198.51.100.200')).toBe(true);
    expect(m('::ffff:10.1.2.3')).toBe(true);
    expect(m('::1')).toBe(true);
    expect(m('[::1]')).toBe(true);
  });

  test('names are not resolved: a name never matches an address entry, nor an address a name entry', () => {
    const m = matcher('10.0.0.0/8, example');
    expect(m('ten.internal')).toBe(false);
    expect(m('10.0.0.1')).toBe(true);
    expect(matcher('1.2.3.4')('4.3.2.1.in-addr.example')).toBe(false);
  });

  test('unusable entries are reported and skipped, the rest applies', () => {
    const { noProxy, problems } = parseNoProxy([
      'a.example',
      '10.0.0.0/33',
      'b.example:99999',
      'x y',
      'fd00::/129',
    ]);
    expect(problems).toEqual([
      '"10.0.0.0/33": prefix must be 0-32',
      '"b.example:99999": port must be 1-65535',
      '"x y": not a host name, address or range',
      '"fd00::/129": prefix must be 0-128',
    ]);
    expect(noProxy.entries).toEqual(['a.example']);
    expect(noProxy.matches('a.example', 1)).toBe(true);
  });

  test('the environment form: commas and/or whitespace', () => {
    expect(splitNoProxy(' a.example,b.example  c.example,,\n10.0.0.0/8 ')).toEqual([
      'a.example',
      'b.example',
      'c.example',
      '10.0.0.0/8',
    ]);
  });
});
