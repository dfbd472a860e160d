// The embedded DNS server end to end: the standalone runner (dist/dns/run-standalone.js) in the lab's
// `app` namespace, dnsmasq in `net` as the upstream, and dig from `app` as the client.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { createVipAllocator } from '../../dns/vip.js';
import { REPO } from './helpers.js';

const RUNNER = join(REPO, 'dist', 'dns', 'run-standalone.js');
const DATAPLANE_UID = 5678;
const SEARCH = ['ns1.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];
const NAMES = ['orders', 'billing'];
const DEAD = '198.51.100.99';
/** Four 200-octet strings: a TXT answer of ~850 octets. */
const BIG_TXT = Array.from({ length: 4 }, (_, i) => String(i).repeat(200));

function distIsStale(): boolean {
  const mtime = (p: string) => (existsSync(p) ? statSync(p).mtimeMs : -1);
  return readdirSync(join(REPO, 'dns'))
    .filter((f) => f.endsWith('.ts'))
    .some((f) => mtime(join(REPO, 'dist', 'dns', f.replace(/\.ts$/, '.js'))) < mtime(join(REPO, 'dns', f)));
}

interface Dig {
  status: string;
  flags: string[];
  answers: Array<{ name: string; ttl: number; type: string; data: string }>;
  authority: string[];
  raw: string;
}

function parseDig(raw: string): Dig {
  const status = /status: (\w+)/.exec(raw)?.[1] ?? 'NONE';
  // The last header wins (after "Truncated, retrying in TCP mode" dig prints the TCP answer).
  const flagLines = [...raw.matchAll(/;; flags: ([a-z ]*);/g)];
  const flags = (flagLines.at(-1)?.[1] ?? '').trim().split(/\s+/);
  const section = (title: string): string[] => {
    const start = raw.lastIndexOf(`;; ${title} SECTION:`);
    if (start < 0) return [];
    const lines = raw.slice(start).split('\n').slice(1);
    return lines
      .slice(
        0,
        lines.findIndex((l) => l.trim() === ''),
      )
      .filter((l) => !l.startsWith(';'));
  };
  const answers = section('ANSWER').map((l) => {
    const [name, ttl, , type, ...data] = l.split(/\s+/);
    return { name: name!, ttl: Number(ttl), type: type!, data: data.join(' ') };
  });
  return { status, flags, answers, authority: section('AUTHORITY'), raw };
}

describe('embedded DNS in the lab', () => {
  let lab: Lab;
  let dns: Background;
  let failover: Background;
  const vips = createVipAllocator();
  vips.sync(NAMES);

  const dig = async (args: string[], port = 15053, server = '127.0.0.1'): Promise<Dig> => {
    const r = await lab.run(
      'app',
      ['dig', `@${server}`, '-p', String(port), '+time=3', '+tries=1', ...args],
      {
        reject: false,
        uid: 1000,
      },
    );
    return parseDig(r.stdout + r.stderr);
  };
  const answered = (bg: Background, needle: string) =>
    bg
      .output()
      .split('\n')
      .filter((l) => l.includes('"msg":"dns answered"') && l.includes(needle)).length;
  const startRunner = async (config: object): Promise<Background> => {
    const bg = lab.spawn('app', [process.execPath, RUNNER, JSON.stringify(config)], { uid: DATAPLANE_UID });
    await bg.waitFor(/"msg":"dns ready"/, 15_000);
    return bg;
  };

  beforeAll(async () => {
    if (distIsStale()) await execa('npm', ['run', '--silent', 'build:ts'], { cwd: REPO });
    cleanupStaleLabs();
    lab = await createLab();
    const upstreams = [lab.addr.dnsV4, ...(lab.ipv6 ? [lab.addr.dnsV6] : [])];
    await lab.writeResolvConf([`search ${SEARCH.join(' ')}`, ...upstreams.map((a) => `nameserver ${a}`)]);
    const manyA = Array.from({ length: 40 }, (_, i) => `--host-record=many.upstream.test,203.0.113.${i + 1}`);
    const dnsmasq = lab.spawn('net', [
      'dnsmasq',
      '--keep-in-foreground',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--user=root',
      '--pid-file',
      '--port=53',
      ...upstreams.map((a) => `--listen-address=${a}`),
      '--log-facility=-',
      '--log-queries',
      '--local-ttl=300',
      // Truncates UDP answers at 512 octets, so the server's "TC → retry over TCP" path runs too.
      '--edns-packet-max=512',
      '--address=/upstream.test/203.0.113.5',
      '--host-record=v6.upstream.test,2001:db8:5::5',
      '--address=/nx.test/',
      '--txt-record=txt.upstream.test,hello from dnsmasq', // argv, no shell: no quotes
      `--txt-record=bigtxt.upstream.test,${BIG_TXT.join(',')}`,
      '--mx-host=upstream.test,mail.upstream.test,10',
      '--srv-host=_http._tcp.upstream.test,web.upstream.test,8080,1,2',
      ...manyA,
    ]);
    await dnsmasq.waitFor(/started, version/, 10_000);
    dns = await startRunner({
      names: NAMES,
      kubernetesNamespace: 'shop',
      upstream: { resolvConf: '/etc/resolv.conf' },
      logLevel: 'debug',
    });
    // A second server whose first upstream never answers (servers given explicitly this time).
    failover = await startRunner({
      port: 15054,
      names: NAMES,
      upstream: { servers: [DEAD, upstreams.at(-1)] },
      upstreamTimeoutMs: 1000,
      logLevel: 'debug',
    });
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
  }, 60_000);

  test('the server listens on loopback only, v4 and v6, UDP and TCP, as the dataplane UID', async () => {
    const ss = (await lab.run('app', ['ss', '-Hlntu'])).stdout;
    const sockets = ss
      .split('\n')
      .filter((l) => l.includes(':15053'))
      .map((l) => l.split(/\s+/)[4]);
    expect(sockets.sort()).toEqual(
      (lab.ipv6
        ? ['127.0.0.1:15053', '127.0.0.1:15053', '[::1]:15053', '[::1]:15053']
        : ['127.0.0.1:15053', '127.0.0.1:15053']
      ).sort(),
    );
    expect(ss).not.toMatch(/0\.0\.0\.0:15053|\*:15053|\[::\]:15053/);
    const owner = (await lab.run('app', ['ps', '-o', 'uid=', '-p', String(dns.pid)])).stdout.trim();
    expect(owner).toBe(String(DATAPLANE_UID));
  });

  test('destination names: A and AAAA with VIPs, bare and suffixed, authoritative, TTL 30', async () => {
    const vip = vips.vipFor('orders');
    for (const name of [
      'orders',
      'ORDERS.',
      'orders.ns1.svc.cluster.local',
      'orders.cluster.local',
      'orders.shop.svc.cluster.local',
    ]) {
      const a = await dig([name, 'A']);
      expect(a.status).toBe('NOERROR');
      expect(a.flags).toContain('aa');
      expect(a.answers.map((x) => [x.name.toLowerCase(), x.ttl, x.type, x.data])).toEqual([
        [`${name.toLowerCase().replace(/\.$/, '')}.`, 30, 'A', vip.ipv4],
      ]);
    }
    const aaaa = await dig(['billing.svc.cluster.local', 'AAAA']);
    expect(aaaa.answers).toEqual([
      { name: 'billing.svc.cluster.local.', ttl: 30, type: 'AAAA', data: vips.vipFor('billing').ipv6 },
    ]);
    if (lab.ipv6) expect((await dig(['orders'], 15053, '::1')).answers[0]?.data).toBe(vip.ipv4);
  });

  test('a known name without data for the type: NOERROR, empty answer, SOA', async () => {
    for (const type of ['TXT', 'MX']) {
      const r = await dig(['orders', type]);
      expect(r.status).toBe('NOERROR');
      expect(r.flags).toContain('aa');
      expect(r.answers).toEqual([]);
      expect(r.authority.join('\n')).toMatch(/^orders\.\s+30\s+IN\s+SOA\s+dns\.detour\.invalid\./m);
    }
  });

  test('other names are answered by dnsmasq: A, AAAA, NXDOMAIN, TXT, MX, SRV', async () => {
    const a = await dig(['upstream.test']);
    expect(a.answers).toEqual([{ name: 'upstream.test.', ttl: 300, type: 'A', data: '203.0.113.5' }]);
    expect((await dig(['v6.upstream.test', 'AAAA'])).answers[0]?.data).toBe('2001:db8:5::5');
    expect((await dig(['gone.nx.test'])).status).toBe('NXDOMAIN');
    expect((await dig(['txt.upstream.test', 'TXT'])).answers[0]?.data).toBe('"hello from dnsmasq"');
    expect((await dig(['upstream.test', 'MX'])).answers[0]?.data).toBe('10 mail.upstream.test.');
    expect((await dig(['_http._tcp.upstream.test', 'SRV'])).answers[0]?.data).toBe(
      '1 2 8080 web.upstream.test.',
    );
  });

  test('TCP queries, local and forwarded', async () => {
    expect((await dig(['+tcp', 'orders'])).answers[0]?.data).toBe(vips.vipFor('orders').ipv4);
    const txt = await dig(['+tcp', 'txt.upstream.test', 'TXT']);
    expect(txt.answers[0]?.data).toBe('"hello from dnsmasq"');
    expect(answered(dns, '"transport":"tcp"')).toBeGreaterThanOrEqual(2);
  });

  test('large answers: truncated over UDP with TC, complete over TCP', async () => {
    // dnsmasq truncates at 512, so the server fetches the 40 A records again over TCP.
    const edns = await dig(['many.upstream.test']);
    expect(edns.answers).toHaveLength(40);
    expect(edns.flags).not.toContain('tc');
    expect(dns.output()).toMatch(/"name":"many\.upstream\.test".*"via":"tcp"/);
    // Without EDNS the client may take 512 octets: TC, and dig's own TCP retry gets everything.
    const skeleton = await dig(['+noedns', '+ignore', 'many.upstream.test']);
    expect(skeleton.flags).toContain('tc');
    expect(skeleton.answers).toEqual([]);
    const retried = await dig(['+noedns', 'bigtxt.upstream.test', 'TXT']);
    expect(retried.raw).toContain('Truncated, retrying in TCP mode');
    expect(retried.answers).toHaveLength(1);
    expect(retried.answers[0]!.data).toBe(BIG_TXT.map((s) => `"${s}"`).join(' '));
  });

  test('a repeated query comes from the cache', async () => {
    const before = answered(dns, '"source":"cache"');
    await dig(['cached.upstream.test']);
    const second = await dig(['cached.upstream.test']);
    expect(second.answers[0]).toMatchObject({ type: 'A', data: '203.0.113.5' });
    expect(second.answers[0]!.ttl).toBeLessThanOrEqual(300);
    expect(answered(dns, '"source":"cache"')).toBe(before + 1);
    // Cookies are not forwarded, so a cached answer carries no other client's server cookie.
    expect(second.raw).not.toMatch(/COOKIE mismatch/i);
    expect(dns.output()).toMatch(/"source":"upstream","rcode":"NOERROR","type":"A"/);
  });

  test('a dead first upstream: failover to the next one (IPv6 when the lab has it)', async () => {
    const t = Date.now();
    const r = await dig(['upstream.test'], 15054);
    expect(r.answers[0]?.data).toBe('203.0.113.5');
    expect(Date.now() - t).toBeLessThan(2900);
    // Answered by the second server in the list (the first one never answers).
    const second = lab.ipv6 ? `[${lab.addr.dnsV6}]:53` : `${lab.addr.dnsV4}:53`;
    expect(failover.output()).toContain(`"server":"${second}"`);
    expect(failover.output()).not.toContain(`"server":"${DEAD}:53"`);
    // The dead server now waits at the back: the next query does not wait for it.
    const t2 = Date.now();
    expect((await dig(['txt.upstream.test', 'TXT'], 15054)).answers).toHaveLength(1);
    expect(Date.now() - t2).toBeLessThan(900);
  });

  test('garbage packets do not kill the server; a readable header gets FORMERR', async () => {
    const script = `
      const dgram = require('node:dgram'); const net = require('node:net'); const crypto = require('node:crypto');
      const s = dgram.createSocket('udp4');
      let n = 0;
      for (let len = 0; len < 700; len += 7) { s.send(crypto.randomBytes(len), 15053, '127.0.0.1'); n++; }
      const c = net.connect(15053, '127.0.0.1', () => { c.end(crypto.randomBytes(3000)); });
      c.on('error', () => {});
      const q = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x61]);
      s.on('message', (m) => { if (m.readUInt16BE(0) === 0xabcd) { console.log('reply', m.subarray(0, 4).toString('hex')); process.exit(0); } });
      setTimeout(() => s.send(q, 15053, '127.0.0.1'), 300);
      setTimeout(() => { console.log('no reply after', n, 'packets'); process.exit(1); }, 3000);
    `;
    const r = await lab.run('app', [process.execPath, '-e', script], { reject: false });
    // abcd = ID echoed; 81 01 = QR, RD, RA and rcode 1 (FORMERR).
    expect(r.stdout.trim()).toBe('reply abcd8181');
    expect((await dig(['orders'])).answers[0]?.data).toBe(vips.vipFor('orders').ipv4);
    expect(dns.output()).toMatch(/"source":"error","rcode":"DROPPED"/);
    expect(dns.output()).not.toMatch(/"level":50/);
  });
});

describe('embedded DNS on a host without IPv6', () => {
  let lab: Lab;
  beforeAll(async () => {
    if (distIsStale()) await execa('npm', ['run', '--silent', 'build:ts'], { cwd: REPO });
    cleanupStaleLabs();
    lab = await createLab({ ipv6: false });
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  }, 60_000);

  test('::1 is skipped with a warning; 127.0.0.1 answers', async () => {
    const bg = lab.spawn(
      'app',
      [process.execPath, RUNNER, JSON.stringify({ names: NAMES, upstream: { servers: [] } })],
      {
        uid: DATAPLANE_UID,
      },
    );
    await bg.waitFor(/"msg":"dns ready"/, 15_000);
    expect(bg.output()).toMatch(/"msg":"no IPv6 on this host: DNS listens on IPv4 loopback only"/);
    const sockets = (await lab.run('app', ['ss', '-Hlntu'])).stdout;
    expect(sockets).toContain('127.0.0.1:15053');
    expect(sockets).not.toContain('[::1]:15053');
    const r = await lab.run('app', [
      'dig',
      '@127.0.0.1',
      '-p',
      '15053',
      '+short',
      '+time=3',
      '+tries=1',
      'orders',
    ]);
    expect(r.stdout.trim()).toBe(createVipAllocator().vipFor('orders').ipv4);
    // No upstream: other names get SERVFAIL, and the server lives on.
    const other = await lab.run('app', [
      'dig',
      '@127.0.0.1',
      '-p',
      '15053',
      '+time=3',
      '+tries=1',
      'x.example.test',
    ]);
    expect(other.stdout).toContain('status: SERVFAIL');
  });
});
