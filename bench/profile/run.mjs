#!/usr/bin/env node
// Quick, repeatable dataplane measurement (see README.md): detour vs nginx (HTTP with an injected
// Authorization header) and vs haproxy `mode tcp` (iperf3 and added latency), in one lab, one run.
// Usage (root, after `npm run build`): node bench/profile/run.mjs [--duration 10] [--only http,rate,tcp]
//   [--cpu-prof DIR] [--perf FILE] [--detour CHECKOUT] [--nginx-workers auto|N] [--json FILE]
import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearInterval, setInterval, setTimeout } from 'node:timers';
import { parseArgs } from 'node:util';
import { cleanupStaleLabs, createLab } from '../../dist/test/lab/lab.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const RATE_LUA = join(REPO, 'bench', 'profile', 'rate.lua');
const APP_UID = 1000; // the workload: redirected
const PEER_UID = 2000; // nginx forwarder, haproxy, direct baselines: excluded from redirection
const DATAPLANE_UID = 5678;
const SERVER = '198.51.100.10';
const AUTH = `Basic ${Buffer.from('bench:bench-PASS').toString('base64')}`;

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    rate: { type: 'string', default: '1000' },
    only: { type: 'string', default: 'http,rate,tcp' },
    'cpu-prof': { type: 'string' },
    'nginx-workers': { type: 'string', default: 'auto' },
    json: { type: 'string' },
    perf: { type: 'string' },
    detour: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
  },
});
// --detour DIR: another built checkout (e.g. the commit before a change) for BEFORE figures
const DETOUR_BIN = join(opts.detour ?? REPO, 'bin', 'detour.js');
const only = new Set(opts.only.split(','));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- process accounting: CPU seconds (utime+stime of the process tree) and RSS ----
const TICKS = 100;
function treeOf(root) {
  const parents = new Map();
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      parents.set(Number(p), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parents) if (pp === out[i]) out.push(p);
  return out;
}
function cpuSeconds(root, which = 'all') {
  let ticks = 0;
  for (const pid of treeOf(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (which !== 'sys') ticks += Number(f[11]); // utime
      if (which !== 'user') ticks += Number(f[12]); // stime
    } catch {
      /* gone */
    }
  }
  return ticks / TICKS;
}
function rssMb(root) {
  let kb = 0;
  for (const pid of treeOf(root)) {
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += m ? Number(m[1]) : 0;
    } catch {
      /* gone */
    }
  }
  return kb / 1024;
}
/** Runs fn while sampling the processes' RSS; returns fn's result with CPU seconds and peak RSS each. */
async function measured(pids, fn) {
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p)]));
  const sys0 = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, cpuSeconds(p, 'sys')]));
  const peak = Object.fromEntries(Object.keys(pids).map((k) => [k, 0]));
  const timer = setInterval(() => {
    for (const [k, p] of Object.entries(pids)) peak[k] = Math.max(peak[k], rssMb(p));
  }, 250);
  const result = await fn();
  clearInterval(timer);
  const usage = {};
  for (const [k, p] of Object.entries(pids))
    usage[k] = {
      cpuS: cpuSeconds(p) - cpu0[k],
      sysS: cpuSeconds(p, 'sys') - sys0[k],
      rssMb: Math.max(peak[k], rssMb(p)),
    };
  return { ...result, usage };
}

// ---- tools ----
function ms(text) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
}
function parseWrk(out) {
  const pct = (p) => ms(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)/.exec(out)?.[1];
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
    requests,
    p50: pct(50),
    p99: pct(99),
    non2xx,
    ...(errors ? { errors } : {}),
  };
}

async function main() {
  cleanupStaleLabs();
  const lab = await createLab();
  const stop = [];
  try {
    chmodSync(lab.dir, 0o755);
    const dir = (name, uid = 0) => {
      const d = join(lab.dir, name);
      mkdirSync(d, { recursive: true });
      chownSync(d, uid, uid);
      return d;
    };

    // upstream in net: small body, 401 unless the Authorization header is the expected one
    const up = dir('upstream');
    writeFileSync(
      join(up, 'nginx.conf'),
      `daemon off; worker_processes 1; pid ${up}/nginx.pid; error_log stderr warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${up}/b; proxy_temp_path ${up}/p; fastcgi_temp_path ${up}/f;
  scgi_temp_path ${up}/s; uwsgi_temp_path ${up}/u;
  server { listen ${SERVER}:8080;
    location / { if ($http_authorization != "${AUTH}") { return 401 "no auth\\n"; } return 200 "ok\\n"; } } }
`,
    );
    const upstream = lab.spawn('net', ['nginx', '-c', join(up, 'nginx.conf')]);
    const iperf = lab.spawn('net', ['iperf3', '-s', '-B', SERVER, '-p', '5201']);
    stop.push(upstream, iperf);

    // peers in app, as PEER_UID (not redirected): nginx forwarder adding the header, haproxy mode tcp
    const fw = dir('forwarder', PEER_UID);
    writeFileSync(
      join(fw, 'nginx.conf'),
      `daemon off; worker_processes ${opts['nginx-workers']}; pid ${fw}/nginx.pid; error_log stderr warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path ${fw}/b; proxy_temp_path ${fw}/p; fastcgi_temp_path ${fw}/f;
  scgi_temp_path ${fw}/s; uwsgi_temp_path ${fw}/u;
  upstream target { server ${SERVER}:8080; keepalive 64; }
  server { listen 127.0.0.1:18080;
    location / { proxy_pass http://target; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host ${SERVER}:8080; proxy_set_header Authorization "${AUTH}"; } } }
`,
    );
    const forwarder = lab.spawn('app', ['nginx', '-c', join(fw, 'nginx.conf')], { uid: PEER_UID });
    const hp = dir('haproxy', PEER_UID);
    writeFileSync(
      join(hp, 'haproxy.cfg'),
      `global
  maxconn 4096
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen iperf
  bind 127.0.0.1:15201
  server s1 ${SERVER}:5201
listen http
  bind 127.0.0.1:15080
  server s1 ${SERVER}:8080
`,
    );
    const haproxy = lab.spawn('app', ['haproxy', '-db', '-f', join(hp, 'haproxy.cfg')], { uid: PEER_UID });
    stop.push(forwarder, haproxy);

    // detour: rules, then the dataplane as DATAPLANE_UID with three destinations
    const dt = dir('detour', DATAPLANE_UID);
    const destinations = join(dt, 'destinations.yaml');
    writeFileSync(
      destinations,
      `- Name: bench-http
  Type: HTTP
  URL: http://${SERVER}:8080/
  Authentication: BasicAuthentication
  User: bench
  Password: bench-PASS
- Name: bench-tcp
  Type: TCP
  Address: tcp://${SERVER}:5201
- Name: bench-tcp-http
  Type: TCP
  Address: tcp://${SERVER}:8080
`,
    );
    await lab.writeResolvConf([`nameserver ${lab.addr.dnsV4}`]);
    await lab.run('app', [
      'node',
      DETOUR_BIN,
      'install',
      'transparent-proxy',
      '--redirect-dns',
      '--exclude-outbound-ports-for-uids',
      String(PEER_UID),
    ]);
    const dpLog = join(dt, 'dataplane.log');
    const nodeFlags = opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${opts['cpu-prof']}`] : [];
    if (opts.perf) nodeFlags.push('--perf-basic-prof-only-functions');
    nodeFlags.push(...opts['node-flags'].split(' ').filter(Boolean));
    if (opts['cpu-prof']) mkdirSync(opts['cpu-prof'], { recursive: true, mode: 0o777 });
    if (opts['cpu-prof']) chmodSync(opts['cpu-prof'], 0o777);
    const dpArgs = [
      'node',
      ...nodeFlags,
      DETOUR_BIN,
      'dataplane',
      '--user',
      String(DATAPLANE_UID),
      '--destinations',
      destinations,
    ];
    // stdout to a file (not through the harness): the access log is one line per request
    const dataplane = lab.spawn('app', ['sh', '-c', `exec "$@" >>${dpLog} 2>&1`, 'sh', ...dpArgs]);
    stop.push(dataplane);
    for (let i = 0; ; i++) {
      let text = '';
      try {
        text = readFileSync(dpLog, 'utf8');
      } catch {
        /* not yet */
      }
      if (text.includes('"msg":"ready"')) break;
      if (i > 200) throw new Error(`dataplane not ready:\n${text}`);
      await sleep(100);
    }
    const dig = async (name) =>
      (await lab.run('app', ['dig', '+short', name], { uid: APP_UID })).stdout.trim().split('\n')[0];
    const vip = {
      http: await dig('bench-http'),
      tcp: await dig('bench-tcp'),
      tcpHttp: await dig('bench-tcp-http'),
    };
    const curl = await lab.run('app', ['curl', '-sS', '--max-time', '5', `http://${vip.http}/`], {
      uid: APP_UID,
    });
    if (curl.stdout.trim() !== 'ok') throw new Error(`detour did not inject the header: ${curl.stdout}`);
    const viaNginx = await lab.run('app', ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:18080/'], {
      uid: APP_UID,
    });
    if (viaNginx.stdout.trim() !== 'ok') throw new Error(`nginx forwarder: ${viaNginx.stdout}`);
    await sleep(500);

    const pids = { detour: dataplane.pid, nginx: forwarder.pid, haproxy: haproxy.pid };
    const idleRssMb = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, rssMb(p)]));
    const status = readFileSync(`/proc/${dataplane.pid}/status`, 'utf8');
    idleRssMb.detourSplit = Object.fromEntries(
      ['RssAnon', 'RssFile', 'RssShmem'].map((f) => [
        f,
        Number(new RegExp(`${f}:\\s+(\\d+)`).exec(status)?.[1]) / 1024,
      ]),
    );
    const d = opts.duration;
    const wrk = async (url, extra = [], uid = APP_UID, env = {}) => {
      const r = await lab.run('app', ['wrk', '--latency', '-d', `${d}s`, '--timeout', '5s', ...extra, url], {
        uid,
        env,
        timeoutMs: (Number(d) + 30) * 1000,
      });
      return parseWrk(r.stdout);
    };
    const results = {
      when: new Date().toISOString(),
      duration: Number(d),
      detour: DETOUR_BIN,
      nodeFlags,
      idleRssMb,
    };

    if (only.has('http')) {
      // maximum req/s, same client settings for both
      const c = opts.connections;
      const flags = ['-t', '2', '-c', c];
      results.http = {
        detour: await measured(pids, () => wrk(`http://${vip.http}/`, flags)),
        nginx: await measured(pids, () => wrk('http://127.0.0.1:18080/', flags)),
      };
    }
    if (only.has('rate')) {
      // fixed offered load: latency percentiles, CPU per 1000 requests, RSS
      const conns = 10;
      const flags = ['-t', '1', '-c', String(conns), '-s', RATE_LUA];
      const env = { RATE: opts.rate, CONNS: String(conns) };
      // --perf FILE: `perf record -g` on the dataplane during its run (JIT names from /tmp/perf-PID.map)
      const perf = opts.perf
        ? lab.spawn('app', [
            'perf',
            'record',
            '-F',
            '999',
            '-g',
            '-o',
            opts.perf,
            '-p',
            String(dataplane.pid),
          ])
        : undefined;
      const detourRate = await measured(pids, () => wrk(`http://${vip.http}/`, flags, APP_UID, env));
      await perf?.stop();
      results.rate = {
        detour: detourRate,
        nginx: await measured(pids, () => wrk('http://127.0.0.1:18080/', flags, APP_UID, env)),
        direct: await measured(pids, () =>
          wrk(`http://${SERVER}:8080/`, [...flags, '-H', `Authorization: ${AUTH}`], PEER_UID, env),
        ),
      };
    }
    if (only.has('tcp')) {
      const iperf3 = async (host, port, uid) => {
        const r = await lab.run('app', ['iperf3', '-J', '-c', host, '-p', String(port), '-t', d], {
          uid,
          timeoutMs: (Number(d) + 30) * 1000,
        });
        const j = JSON.parse(r.stdout);
        return { gbps: j.end.sum_received.bits_per_second / 1e9 };
      };
      results.tcp = {
        detour: await measured(pids, () => iperf3(vip.tcp, 5201, APP_UID)),
        haproxy: await measured(pids, () => iperf3('127.0.0.1', 15201, APP_UID)),
        direct: await measured(pids, () => iperf3(SERVER, 5201, PEER_UID)),
      };
      // added latency through a TCP pipe: HTTP at a fixed rate, with the header set by the client
      const conns = 10;
      const flags = ['-t', '1', '-c', String(conns), '-s', RATE_LUA, '-H', `Authorization: ${AUTH}`];
      const env = { RATE: opts.rate, CONNS: String(conns) };
      results.tcpLatency = {
        detour: await measured(pids, () => wrk(`http://${vip.tcpHttp}:8080/`, flags, APP_UID, env)),
        haproxy: await measured(pids, () => wrk('http://127.0.0.1:15080/', flags, APP_UID, env)),
        direct: await measured(pids, () => wrk(`http://${SERVER}:8080/`, flags, PEER_UID, env)),
      };
    }
    results.summary = summarize(results);
    console.log(JSON.stringify(results, null, 2));
    if (opts.json) writeFileSync(opts.json, JSON.stringify(results, null, 2));
  } finally {
    for (const p of stop.reverse()) await p.stop().catch(() => undefined);
    await lab.destroy();
  }
}

function summarize(r) {
  const s = {};
  const round = (x, n = 2) => Math.round(x * 10 ** n) / 10 ** n;
  if (r.http) {
    s.httpRps = {
      detour: r.http.detour.rps,
      nginx: r.http.nginx.rps,
      ratio: round(r.http.detour.rps / r.http.nginx.rps),
    };
    s.httpMaxCpu = {
      detour: round(r.http.detour.usage.detour.cpuS),
      nginx: round(r.http.nginx.usage.nginx.cpuS),
    };
  }
  if (r.rate) {
    const per1000 = (x, who) => round((x.usage[who].cpuS / x.requests) * 1000, 3);
    s.rate = {
      rps: { detour: r.rate.detour.rps, nginx: r.rate.nginx.rps },
      p50: { detour: r.rate.detour.p50, nginx: r.rate.nginx.p50, direct: r.rate.direct.p50 },
      p99: {
        detour: r.rate.detour.p99,
        nginx: r.rate.nginx.p99,
        direct: r.rate.direct.p99,
        ratio: round(r.rate.detour.p99 / r.rate.nginx.p99),
      },
      cpuSecondsPer1000Req: {
        detour: per1000(r.rate.detour, 'detour'),
        nginx: per1000(r.rate.nginx, 'nginx'),
      },
      vCpuPer1000ReqPerS: {
        detour: round(r.rate.detour.usage.detour.cpuS / r.duration / (r.rate.detour.rps / 1000), 3),
      },
      rssMb: {
        detour: round(r.rate.detour.usage.detour.rssMb, 1),
        nginx: round(r.rate.nginx.usage.nginx.rssMb, 1),
      },
    };
  }
  if (r.tcp) {
    s.tcpGbps = {
      detour: round(r.tcp.detour.gbps),
      haproxy: round(r.tcp.haproxy.gbps),
      direct: round(r.tcp.direct.gbps),
      ratio: round(r.tcp.detour.gbps / r.tcp.haproxy.gbps),
    };
    const added = (x) => round(x.p50 - r.tcpLatency.direct.p50, 3);
    s.tcpAddedP50Ms = {
      detour: added(r.tcpLatency.detour),
      haproxy: added(r.tcpLatency.haproxy),
      ratio: round(added(r.tcpLatency.detour) / added(r.tcpLatency.haproxy)),
      p50: {
        detour: r.tcpLatency.detour.p50,
        haproxy: r.tcpLatency.haproxy.p50,
        direct: r.tcpLatency.direct.p50,
      },
    };
  }
  return s;
}

await main();
