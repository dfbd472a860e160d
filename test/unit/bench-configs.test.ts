// The generated peer configurations and the command-line options of the bench.
import { describe, expect, test } from '@jest/globals';
import {
  bearer,
  destinationsYaml,
  dnsmasqArgs,
  dnsperfQueries,
  forwarderNginxConfig,
  haproxyConfig,
  tokensMap,
  upstreamNginxConfig,
} from '../../bench/configs.js';
import { MEASURES, parseOptions, UsageError } from '../../bench/options.js';
import { localDnsAnswers } from '../../bench/measures.js';
import { parseCpuSeconds, parseMachineCpu, parseRssBytes } from '../../bench/proc.js';
import { parse as parseYaml } from 'yaml';

const upstream = { host: '198.51.100.10', httpPort: 80, iperfPort: 5201 };
const ports = { http: 18080, tcpIperf: 15201, tcpHttp: 18081 };
const TOKEN = 'tok_ABC-123';

describe('peer configurations', () => {
  test('upstream nginx: only the mapped tokens pass, the echo location is unchecked', () => {
    const conf = upstreamNginxConfig({ dir: '/tmp/up', upstream, tokensFile: '/tmp/up/tokens.map' });
    expect(conf).toContain('listen 198.51.100.10:80 backlog=4096;');
    expect(conf).toMatch(
      /map \$http_authorization \$bench_authorized \{\n\s+default 0;\n\s+include \/tmp\/up\/tokens.map;/,
    );
    expect(conf).toMatch(/if \(\$bench_authorized = 0\) \{ return 401/);
    expect(conf).toContain('location = /_bench/authorization { return 200 "$http_authorization\\n"; }');
    expect(conf).toContain('access_log off;');
    expect(conf).toContain('proxy_temp_path /tmp/up/proxy;');
    expect(tokensMap(['a', 'b'])).toBe('"Bearer a" 1;\n"Bearer b" 1;\n');
  });

  test('haproxy: one thread, Authorization set on HTTP, two plain TCP forwards', () => {
    const conf = haproxyConfig({ upstream, ports, token: TOKEN });
    expect(conf).toContain('nbthread 1');
    expect(conf).toMatch(/listen http\n\s+mode http\n\s+bind 127\.0\.0\.1:18080\n/);
    expect(conf).toContain(`http-request set-header Authorization "Bearer ${TOKEN}"`);
    expect(conf).toMatch(
      /listen tcp-iperf\n\s+mode tcp\n\s+bind 127\.0\.0\.1:15201\n\s+server upstream 198\.51\.100\.10:5201/,
    );
    expect(conf).toMatch(
      /listen tcp-http\n\s+mode tcp\n\s+bind 127\.0\.0\.1:18081\n\s+server upstream 198\.51\.100\.10:80/,
    );
  });

  test('nginx forwarder: upstream keep-alive, Authorization set, stream forwards only with the module', () => {
    const withStream = forwarderNginxConfig({
      dir: '/tmp/fw',
      upstream,
      ports,
      token: TOKEN,
      streamModule: '/usr/lib/nginx/modules/ngx_stream_module.so',
    });
    expect(withStream.startsWith('load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n')).toBe(true);
    expect(withStream).toContain('worker_processes 1;');
    expect(withStream).toContain(`proxy_set_header Authorization "Bearer ${TOKEN}";`);
    expect(withStream).toContain('proxy_set_header Connection "";');
    expect(withStream).toContain('keepalive 256;');
    expect(withStream).toContain(
      'server { listen 127.0.0.1:15201 backlog=4096; proxy_pass 198.51.100.10:5201; }',
    );
    const without = forwarderNginxConfig({ dir: '/tmp/fw', upstream, ports, token: TOKEN });
    expect(without).not.toMatch(/^stream \{/m);
    expect(without).not.toContain('load_module');
  });

  test('values that would need quoting are refused, naming the value', () => {
    expect(() => bearer('a"; return 200')).toThrow(/bench config: token "a\\"; return 200" must match/);
    expect(() => haproxyConfig({ upstream: { ...upstream, host: 'x y' }, ports, token: TOKEN })).toThrow(
      /host "x y"/,
    );
  });

  test('destinations: the HTTP destination with OAuth2ClientCredentials and two TCP destinations', () => {
    const text = destinationsYaml({
      names: {
        http: 'bench-http',
        tcpIperf: 'bench-iperf',
        tcpHttp: 'bench-tcp-http',
        extra: ['bench-dns-01'],
      },
      upstream,
      tokenServiceUrl: 'http://198.51.100.10:9000/oauth/token',
      clientId: 'bench-client',
      clientSecret: 'sec',
    });
    const list = parseYaml(text) as Record<string, string>[];
    expect(list.map((d) => d.Name)).toEqual(['bench-http', 'bench-iperf', 'bench-tcp-http', 'bench-dns-01']);
    expect(list[0]).toMatchObject({
      Type: 'HTTP',
      URL: 'http://198.51.100.10:80',
      Authentication: 'OAuth2ClientCredentials',
      tokenServiceURL: 'http://198.51.100.10:9000/oauth/token',
      clientId: 'bench-client',
      clientSecret: 'sec',
    });
    expect(list[1]).toEqual({ Name: 'bench-iperf', Type: 'TCP', Address: 'tcp://198.51.100.10:5201' });
    expect(list[2]).toEqual({ Name: 'bench-tcp-http', Type: 'TCP', Address: 'tcp://198.51.100.10:80' });
  });

  test('dnsmasq answers exactly the given records; dnsperf asks for each name', () => {
    const args = dnsmasqArgs({
      listen: '198.51.100.53',
      port: 53,
      records: { a: '240.240.0.1', b: '240.240.0.2' },
    });
    expect(args).toContain('--no-resolv');
    expect(args).toContain('--listen-address=198.51.100.53');
    expect(args.filter((a) => a.startsWith('--host-record='))).toEqual([
      '--host-record=a,240.240.0.1',
      '--host-record=b,240.240.0.2',
    ]);
    expect(dnsperfQueries(['a', 'b'])).toBe('a A\nb A\n');
  });
});

describe('options', () => {
  test('defaults: every measure, 8 s, 1000 req/s', () => {
    expect(parseOptions([], '/out')).toEqual({
      durationS: 8,
      warmupS: 2,
      quick: false,
      only: [...MEASURES],
      rate: 1000,
      outDir: '/out',
      profile: false,
    });
  });

  test('--quick, --only (kept in run order), --duration, --rate, --out', () => {
    const o = parseOptions(
      ['--quick', '--only', 'dns,tcp-throughput', '--rate', '500', '--out', '/x'],
      '/out',
    );
    expect(o).toMatchObject({
      quick: true,
      durationS: 1,
      only: ['tcp-throughput', 'dns'],
      rate: 500,
      outDir: '/x',
    });
    expect(parseOptions(['--quick', '--duration', '3'], '/o').durationS).toBe(3);
    expect(parseOptions(['--profile'], '/o').profile).toBe(true);
  });

  test('bad input names the argument', () => {
    expect(() => parseOptions(['--only', 'http,bogus'], '/o')).toThrow(/--only: unknown measure http, bogus/);
    expect(() => parseOptions(['--duration', '-1'], '/o')).toThrow(
      /--duration: expected a number in \(0, 120\], got "-1"/,
    );
    expect(() => parseOptions(['--duration'], '/o')).toThrow(/--duration needs a value/);
    expect(() => parseOptions(['--fast'], '/o')).toThrow(UsageError);
    expect(() => parseOptions(['--fast'], '/o')).toThrow(/unknown argument "--fast"\nusage: npm run bench/);
  });
});

describe('process figures', () => {
  test('/proc/<pid>/stat: utime + stime, also with spaces and parentheses in the name', () => {
    const fields = [
      'S',
      '1',
      '1',
      '1',
      '0',
      '-1',
      '4194560',
      '100',
      '0',
      '0',
      '0',
      '250',
      '50',
      '0',
      '0',
      '20',
      '0',
      '11',
    ];
    expect(parseCpuSeconds(`1234 (node) ${fields.join(' ')}`)).toBeCloseTo(3.0);
    expect(parseCpuSeconds(`1234 (we (ird) name) ${fields.join(' ')}`)).toBeCloseTo(3.0);
  });

  test('/proc/<pid>/status VmRSS and /proc/stat', () => {
    expect(parseRssBytes('Name:\tnode\nVmRSS:\t  140712 kB\nRssAnon:\t 1 kB\n')).toBe(140712 * 1024);
    expect(() => parseRssBytes('Name:\tnode\n')).toThrow(/no VmRSS/);
    expect(parseMachineCpu('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n')).toEqual({
      busy: 150,
      total: 1000,
    });
  });

  test('local answers of the embedded DNS from /metrics', () => {
    const metrics = [
      '# TYPE detour_dns_queries_total counter',
      'detour_dns_queries_total{source="local",rcode="NOERROR",type="A"} 1200',
      'detour_dns_queries_total{source="local",rcode="NOERROR",type="AAAA"} 5',
      'detour_dns_queries_total{source="upstream",rcode="NOERROR",type="A"} 7',
    ].join('\n');
    expect(localDnsAnswers(metrics)).toBe(1205);
  });
});
