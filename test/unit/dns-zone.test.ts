import { describe, expect, test } from '@jest/globals';
import { parseResolvConf } from '../../dns/resolv-conf.js';
import { parseUpstreamServer } from '../../dns/upstream.js';
import { createVipAllocator } from '../../dns/vip.js';
import { TYPE } from '../../dns/wire.js';
import { createZone, decide } from '../../dns/zone.js';

const vips = createVipAllocator();
const vipFor = (n: string) => vips.vipFor(n);
const zone = createZone({
  names: ['orders', 'Billing'],
  searchSuffixes: ['ns1.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example.test.'],
  kubernetesNamespace: 'shop',
});
const q = (name: string, type: number = TYPE.A, cls = 1) => decide(zone, { name, type, class: cls }, vipFor);

describe('zone matching', () => {
  test('bare names, any case, with or without a trailing dot', () => {
    for (const name of ['orders', 'ORDERS', 'Orders.', 'orders.']) {
      expect(q(name)).toEqual({
        kind: 'answer',
        destination: 'orders',
        records: [{ type: 'A', address: vipFor('orders').ipv4 }],
      });
    }
    expect(q('billing')).toMatchObject({ kind: 'answer', destination: 'billing' });
  });

  test('each search suffix of resolv.conf', () => {
    for (const name of [
      'orders.ns1.svc.cluster.local',
      'orders.svc.cluster.local.',
      'orders.cluster.local',
      'ORDERS.Corp.Example.Test',
    ])
      expect(q(name)).toMatchObject({ kind: 'answer', destination: 'orders' });
  });

  test('Kubernetes forms with the namespace', () => {
    for (const name of [
      'orders.shop',
      'orders.shop.svc',
      'orders.shop.svc.cluster.local',
      'billing.SHOP.svc',
    ])
      expect(q(name)).toMatchObject({ kind: 'answer' });
    const other = createZone({
      names: ['orders'],
      kubernetesNamespace: 'shop',
      clusterDomain: 'k8s.example',
    });
    expect(other.match('orders.shop.svc.k8s.example')).toBe('orders');
    expect(other.match('orders.shop.svc.cluster.local')).toBeUndefined();
  });

  test('other names, partial names and longer names are forwarded', () => {
    for (const name of [
      'order',
      'orders.example.test',
      'x.orders',
      'orders.other-ns',
      'ns1.svc.cluster.local',
      '.',
    ])
      expect(q(name)).toEqual({ kind: 'forward' });
  });

  test('AAAA answers the IPv6 VIP, ANY both', () => {
    expect(q('orders', TYPE.AAAA)).toEqual({
      kind: 'answer',
      destination: 'orders',
      records: [{ type: 'AAAA', address: vipFor('orders').ipv6 }],
    });
    expect(q('orders', TYPE.ANY)).toMatchObject({ records: [{ type: 'A' }, { type: 'AAAA' }] });
  });

  test('a switched-off family and other types are NOERROR without data', () => {
    const v4only = decide(zone, { name: 'orders', type: TYPE.AAAA, class: 1 }, vipFor, {
      ipv4: true,
      ipv6: false,
    });
    expect(v4only).toEqual({ kind: 'nodata', destination: 'orders' });
    const v6only = decide(zone, { name: 'orders', type: TYPE.A, class: 1 }, vipFor, {
      ipv4: false,
      ipv6: true,
    });
    expect(v6only).toEqual({ kind: 'nodata', destination: 'orders' });
    for (const type of [TYPE.TXT, TYPE.MX, TYPE.SRV, TYPE.CNAME, TYPE.HTTPS])
      expect(q('orders', type)).toEqual({ kind: 'nodata', destination: 'orders' });
  });

  test('classes other than IN are forwarded; ANY class is answered', () => {
    expect(q('orders', TYPE.TXT, 3)).toEqual({ kind: 'forward' });
    expect(q('orders', TYPE.A, 255)).toMatchObject({ kind: 'answer' });
  });

  test('a bare name wins over another name with a suffix', () => {
    const z = createZone({ names: ['a', 'a.corp'], searchSuffixes: ['corp'] });
    expect(z.match('a.corp')).toBe('a.corp');
    expect(z.match('a')).toBe('a');
    expect(z.names).toEqual(['a', 'a.corp']);
  });

  test('an invalid Kubernetes namespace is refused', () => {
    expect(() => createZone({ names: [], kubernetesNamespace: 'Not_A_Label!' })).toThrow(
      /Kubernetes namespace "Not_A_Label!" is not a DNS label/,
    );
  });
});

describe('resolv.conf and server specs', () => {
  test('nameservers in order, the last search/domain line, options, bad lines reported', () => {
    const conf = parseResolvConf(
      [
        '# generated',
        'domain first.example',
        'nameserver 198.51.100.53',
        'nameserver 2001:db8:2::53',
        '; comment',
        'nameserver fe80::1%eth0',
        'nameserver not-an-ip',
        'search ns1.svc.cluster.local svc.cluster.local. cluster.local',
        'options ndots:5 timeout:2',
        'nameserver 198.51.100.54',
      ].join('\n'),
    );
    expect(conf.nameservers).toEqual(['198.51.100.53', '2001:db8:2::53', 'fe80::1%eth0', '198.51.100.54']);
    expect(conf.search).toEqual(['ns1.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    expect(conf.options).toEqual(['ndots:5', 'timeout:2']);
    expect(conf.ignored).toEqual(['line 7: "nameserver not-an-ip": not an IP address']);
    expect(parseResolvConf('search a.example\ndomain b.example\n').search).toEqual(['b.example']);
  });

  test('upstream server specs', () => {
    expect(parseUpstreamServer('198.51.100.1')).toEqual({ address: '198.51.100.1', port: 53 });
    expect(parseUpstreamServer('198.51.100.1:5353')).toEqual({ address: '198.51.100.1', port: 5353 });
    expect(parseUpstreamServer('2001:db8::1')).toEqual({ address: '2001:db8::1', port: 53 });
    expect(parseUpstreamServer('[2001:db8::1]:5353')).toEqual({ address: '2001:db8::1', port: 5353 });
    expect(() => parseUpstreamServer('dns.example')).toThrow(/"dns.example" is not an IP address/);
    expect(() => parseUpstreamServer('198.51.100.1:0')).toThrow(/port 0 is not 1-65535/);
  });
});
