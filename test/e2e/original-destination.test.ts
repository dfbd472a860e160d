// End-to-end: SO_ORIGINAL_DST through real iptables REDIRECT rules, and the dataplane forwarding real
// connections. Needs root. Everything happens in network namespaces this file creates and deletes; the
// host's own namespace, rules and routes are never touched. Addresses are documentation ranges only.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const NODE = process.execPath;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const APP_UID = '4242';
const DUAL_STACK_UID = '4243';
const DATAPLANE_UID = '5678';

type Line = Record<string, unknown>;

/** A long-running process inside a namespace; its stdout lines are kept (parsed when JSON). */
class Proc {
  readonly lines: Line[] = [];
  readonly raw: string[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(args: string[], cwd?: string) {
    this.child = spawn(args[0] ?? '', args.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const part of parts) this.take(part);
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  private take(text: string): void {
    this.raw.push(text);
    try {
      this.lines.push(JSON.parse(text) as Line);
    } catch {
      // not JSON (python's log, a stack trace): kept in raw for failure messages
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async waitFor(match: (line: Line) => boolean, what: string, timeoutMs = 10_000): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const line = this.lines.find(match);
      if (line) return line;
      if (this.child.exitCode !== null) break;
      await sleep(20);
    }
    throw new Error(`no ${what} (exit ${this.child.exitCode}); output:\n${this.raw.join('\n')}`);
  }

  async waitForText(text: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.raw.some((l) => l.includes(text))) await sleep(20);
    if (!this.raw.some((l) => l.includes(text)))
      throw new Error(`no "${text}"; output:\n${this.raw.join('\n')}`);
  }

  /** Only ever our own child, by its PID. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

class Namespace {
  private readonly procs: Proc[] = [];

  private constructor(readonly name: string) {}

  static async create(tag: string): Promise<Namespace> {
    const ns = new Namespace(`dtdp-${process.pid}-${randomBytes(3).toString('hex')}-${tag}`);
    await execa('ip', ['netns', 'add', ns.name]);
    created.push(ns);
    await ns.ip('link', 'set', 'lo', 'up');
    // Per-namespace sysctls: no duplicate address detection, so IPv6 works the moment a link is up.
    await execa('ip', [
      'netns',
      'exec',
      ns.name,
      'sysctl',
      '-qw',
      ...['all', 'default'].map((c) => `net.ipv6.conf.${c}.accept_dad=0`),
    ]);
    return ns;
  }

  ip(...args: string[]) {
    return execa('ip', ['-n', this.name, ...args]);
  }

  exec(args: string[], uid?: string) {
    const as = uid ? ['setpriv', '--reuid', uid, '--regid', uid, '--clear-groups'] : [];
    return execa('ip', ['netns', 'exec', this.name, ...as, ...args], { reject: false, timeout: 30_000 });
  }

  async rules(tool: 'iptables' | 'ip6tables', rules: string[][]): Promise<void> {
    for (const rule of rules) await execa('ip', ['netns', 'exec', this.name, tool, '-w', ...rule]);
  }

  spawn(args: string[], cwd?: string): Proc {
    const proc = new Proc(['ip', 'netns', 'exec', this.name, ...args], cwd);
    this.procs.push(proc);
    return proc;
  }

  async destroy(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
    await execa('ip', ['netns', 'del', this.name], { reject: false });
  }
}

const created: Namespace[] = [];

async function mac(ns: Namespace, dev: string): Promise<string> {
  const { stdout } = await ns.ip('-j', 'link', 'show', dev);
  return (JSON.parse(stdout) as Array<{ address: string }>)[0]?.address ?? '';
}

/**
 * Permanent neighbour entries on both ends of a veth: without them the first IPv6 SYN across a fresh
 * link is sometimes lost to neighbour discovery and only the 1 s retransmit gets through.
 */
async function staticNeighbours(a: Namespace, aDev: string, b: Namespace, bDev: string): Promise<void> {
  const [aMac, bMac] = [await mac(a, aDev), await mac(b, bDev)];
  const pairs = [
    [a, aDev, bMac, ['198.51.100.2', '2001:db8:5::2']],
    [b, bDev, aMac, ['198.51.100.1', '2001:db8:5::1']],
  ] as const;
  for (const [ns, dev, lladdr, addresses] of pairs) {
    for (const address of addresses) {
      await ns.ip('neigh', 'replace', address, 'lladdr', lladdr, 'dev', dev, 'nud', 'permanent');
    }
  }
}
let scratch: string;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** curl whose body is whatever the peer sends (the test listener answers without HTTP framing). */
function curl(ns: Namespace, url: string, uid?: string) {
  return ns.exec(['curl', '-sS', '--http0.9', '--max-time', '8', url], uid);
}

/**
 * True when a TypeScript source is newer than its compiled file, or the addon than its source. Building
 * only then keeps this file from rewriting dist/ while other test files run the CLI from it.
 */
function buildIsStale(): boolean {
  const mtime = (path: string) => (existsSync(path) ? statSync(path).mtimeMs : -1);
  const sources = ['cmd', 'dataplane', 'dns', 'init', 'ebpf', 'k8s']
    .filter((dir) => existsSync(join(REPO, dir)))
    .flatMap((dir) =>
      readdirSync(join(REPO, dir), { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f)),
    )
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'));
  const stale = sources.some(
    (f) => mtime(join(REPO, 'dist', f.replace(/\.ts$/, '.js'))) < mtime(join(REPO, f)),
  );
  const addon = mtime(join(REPO, 'build/original_dst.node'));
  return stale || addon < mtime(join(REPO, 'dataplane/native/original_dst.cc'));
}

beforeAll(async () => {
  // The e2e runs the compiled CLI and the built addon (`npm run build`); build them if out of date.
  if (buildIsStale()) await execa('npm', ['run', '--silent', 'build'], { cwd: REPO });
  scratch = mkdtempSync(join(tmpdir(), 'dtdp-e2e-'));
}, 180_000);

afterAll(async () => {
  for (const ns of created.splice(0)) await ns.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  const { stdout } = await execa('ip', ['netns', 'list']);
  expect(stdout).not.toContain(`dtdp-${process.pid}-`);
}, 60_000);

describe('SO_ORIGINAL_DST under iptables REDIRECT', () => {
  let ns: Namespace;
  let listener: Proc;

  // One namespace, a veth pair with both ends inside it (the kernel here has no dummy driver), so
  // 198.51.100.0/24 and 2001:db8:5::/64 are routable and the REDIRECT rules see real destinations.
  beforeAll(async () => {
    ns = await Namespace.create('od');
    await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ns.ip('link', 'set', 'v0', 'up');
    await ns.ip('link', 'set', 'v1', 'up');
    await ns.ip('addr', 'add', '198.51.100.1/24', 'dev', 'v0');
    await ns.ip('addr', 'add', '2001:db8:5::1/64', 'dev', 'v0', 'nodad');
    await ns.ip('route', 'add', 'default', 'dev', 'v0');
    await ns.ip('-6', 'route', 'add', 'default', 'dev', 'v0');
    const redirect = (uid: string, port: string) => [
      [
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-m',
        'owner',
        '--uid-owner',
        uid,
        '-j',
        'REDIRECT',
        '--to-ports',
        port,
      ],
    ];
    await ns.rules('iptables', [...redirect(APP_UID, '15101'), ...redirect(DUAL_STACK_UID, '15102')]);
    await ns.rules('ip6tables', [...redirect(APP_UID, '15101'), ...redirect(DUAL_STACK_UID, '15102')]);
    // Port 15103 is untracked both ways: conntrack has no entry, so the kernel answers ENOENT.
    await ns.rules('iptables', [
      ['-t', 'raw', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '15103', '-j', 'NOTRACK'],
      ['-t', 'raw', '-A', 'OUTPUT', '-p', 'tcp', '--sport', '15103', '-j', 'NOTRACK'],
    ]);

    const script = join(scratch, 'od-listener.mjs');
    const wrapper = pathToFileURL(join(REPO, 'dist/dataplane/original-destination.js')).href;
    writeFileSync(
      script,
      `import net from 'node:net';
import { originalDestination } from ${JSON.stringify(wrapper)};
const listen = (host, port, ipv6Only) => new Promise((resolve) => {
  const server = net.createServer((s) => {
    const reply = { local: s.localAddress, localPort: s.localPort, result: originalDestination(s) };
    s.end(JSON.stringify(reply) + '\\n');
  });
  server.listen({ host, port, ipv6Only }, resolve);
});
await listen('127.0.0.1', 15101, false);
await listen('::1', 15101, true);
await listen('::', 15102, false); // dual-stack: IPv4 clients arrive v4-mapped
await listen('127.0.0.1', 15103, false);
console.log(JSON.stringify({ msg: 'ready' }));
`,
    );
    listener = ns.spawn([NODE, script]);
    await listener.waitFor((l) => l.msg === 'ready', 'listener ready');
  }, 60_000);

  async function ask(url: string, uid?: string) {
    const r = await curl(ns, url, uid);
    expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
    return JSON.parse(r.stdout) as { local: string; localPort: number; result: Record<string, unknown> };
  }

  test('IPv4: the exact original address and port', async () => {
    const reply = await ask('http://198.51.100.7:8080/', APP_UID);
    expect(reply.local).toBe('127.0.0.1');
    expect(reply.result).toEqual({ redirected: true, address: '198.51.100.7', port: 8080, family: 4 });
  });

  test('IPv6: ip6tables REDIRECT to the ::1 listener', async () => {
    const reply = await ask('http://[2001:db8:5::9]:8443/', APP_UID);
    expect(reply.local).toBe('::1');
    expect(reply.result).toEqual({ redirected: true, address: '2001:db8:5::9', port: 8443, family: 6 });
  });

  test('v4-mapped: an IPv4 connection on a dual-stack :: listener', async () => {
    const reply = await ask('http://198.51.100.7:8081/', DUAL_STACK_UID);
    expect(reply.local).toBe('::ffff:127.0.0.1');
    expect(reply.result).toEqual({ redirected: true, address: '198.51.100.7', port: 8081, family: 4 });
  });

  test('IPv6 on the dual-stack listener', async () => {
    const reply = await ask('http://[2001:db8:5::9]:8444/', DUAL_STACK_UID);
    expect(reply.result).toEqual({ redirected: true, address: '2001:db8:5::9', port: 8444, family: 6 });
  });

  test('a direct connection to the listener is not redirected (v4, v6, v4-mapped)', async () => {
    for (const url of ['http://127.0.0.1:15101/', 'http://[::1]:15101/', 'http://127.0.0.1:15102/']) {
      const reply = await ask(url);
      expect(reply.result).toEqual({ redirected: false, reason: expect.stringContaining('listener itself') });
    }
  });

  test('an untracked connection (kernel says ENOENT) is not redirected', async () => {
    const reply = await ask('http://127.0.0.1:15103/');
    expect(reply.result).toEqual({
      redirected: false,
      reason: expect.stringContaining('no original destination'),
    });
  });
});

describe('detour dataplane forwarding redirected connections', () => {
  let app: Namespace;
  let net: Namespace;
  let dataplane: Proc;
  const outboundLines = () => dataplane.lines.filter((l) => l.msg === 'outbound connection');

  // app: the workload, its rules and the dataplane (198.51.100.1); net: upstream servers (198.51.100.2).
  beforeAll(async () => {
    app = await Namespace.create('app');
    net = await Namespace.create('net');
    await app.ip('link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'n0', 'netns', net.name);
    for (const [ns, dev, v4, v6] of [
      [app, 'a0', '198.51.100.1/24', '2001:db8:5::1/64'],
      [net, 'n0', '198.51.100.2/24', '2001:db8:5::2/64'],
    ] as const) {
      await ns.ip('addr', 'add', v4, 'dev', dev);
      await ns.ip('addr', 'add', v6, 'dev', dev, 'nodad');
      await ns.ip('link', 'set', dev, 'up');
    }
    await staticNeighbours(app, 'a0', net, 'n0');
    await app.ip('route', 'add', 'default', 'via', '198.51.100.2');
    await app.ip('-6', 'route', 'add', 'default', 'via', '2001:db8:5::2');

    // The loop breaker: the dataplane's own connections (UID 5678) are never redirected.
    const outbound = [
      ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-m', 'owner', '--uid-owner', DATAPLANE_UID, '-j', 'RETURN'],
      ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-o', 'lo', '-j', 'RETURN'],
      [
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-m',
        'owner',
        '!',
        '--uid-owner',
        DATAPLANE_UID,
        '-j',
        'REDIRECT',
        '--to-ports',
        '15001',
      ],
    ];
    const inbound = [
      ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '-i', 'a0', '-j', 'REDIRECT', '--to-ports', '15006'],
    ];
    await app.rules('iptables', [...outbound, ...inbound]);
    await app.rules('ip6tables', outbound);
    // Upstream that swallows SYNs, for the connect timeout (only the dataplane's connect gets here).
    await app.rules('iptables', [['-A', 'OUTPUT', '-d', '203.0.113.9', '-j', 'DROP']]);

    const site = join(scratch, 'site');
    const appSite = join(scratch, 'app-site');
    for (const [dir, text] of [
      [site, 'detour-e2e-upstream'],
      [appSite, 'detour-e2e-app'],
    ] as const) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'index.html'), `${text}\n`);
    }
    // Not `python3 -m http.server`: its server_bind() does a reverse DNS lookup that hangs in here.
    const server = join(scratch, 'http-server.py');
    writeFileSync(
      server,
      `import functools, http.server, socket, socketserver, sys
directory, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Server(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6 if ':' in host else socket.AF_INET
    allow_reuse_address = True
    daemon_threads = True
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
with Server((host, port), handler) as s:
    print('Serving HTTP', flush=True)
    s.serve_forever()
`,
    );
    const http = (ns: Namespace, dir: string, bind: string, port: string) => {
      const p = ns.spawn([PYTHON, '-u', server, dir, bind, port]);
      return p.waitForText('Serving HTTP');
    };
    await Promise.all([
      http(net, site, '198.51.100.2', '8080'),
      http(net, site, '2001:db8:5::2', '8080'),
      http(app, appSite, '198.51.100.1', '9090'),
    ]);

    dataplane = app.spawn(
      [NODE, 'bin/detour.js', 'dataplane', '--user', DATAPLANE_UID, '--connect-timeout', '3000'],
      REPO,
    );
    await dataplane.waitFor((l) => l.msg === 'ready', 'dataplane ready line');
  }, 60_000);

  test('the ready line lists all listeners; the process runs as the dataplane UID', async () => {
    const ready = dataplane.lines.find((l) => l.msg === 'ready');
    expect(ready?.listeners).toEqual([
      'outbound 127.0.0.1:15001',
      'outbound [::1]:15001',
      'inbound 0.0.0.0:15006',
      'inbound [::]:15006',
    ]);
    const status = readFileSync(`/proc/${dataplane.pid}/status`, 'utf8');
    expect(status).toMatch(new RegExp(`^Uid:\\t${DATAPLANE_UID}\\t${DATAPLANE_UID}\\t`, 'm'));
    expect(status).toMatch(/^Groups:\s*$/m);
  });

  test('IPv4: the application gets the page; the log names the original destination', async () => {
    const r = await app.exec(['curl', '-sS', '--max-time', '8', 'http://198.51.100.2:8080/'], APP_UID);
    expect(r.stdout).toContain('detour-e2e-upstream');
    const open = await dataplane.waitFor(
      (l) => l.msg === 'outbound connection' && l.originalDestination === '198.51.100.2:8080',
      'outbound connection line',
    );
    expect(open).toMatchObject({ direction: 'outbound', level: 30 });
    expect(open.source).toMatch(/^198\.51\.100\.1:\d+$/);
    const closed = await dataplane.waitFor(
      (l) => l.msg === 'connection closed' && l.id === open.id,
      'connection closed line',
    );
    // spliced: the bytes went through the native splice relay (on unless DETOUR_SPLICE=0)
    expect(closed).toMatchObject({
      upstreamConnected: true,
      originalDestination: '198.51.100.2:8080',
      ...(process.env.DETOUR_SPLICE === '0' ? {} : { spliced: true }),
    });
    expect(closed.bytesIn).toBeGreaterThan(50);
    expect(closed.bytesOut).toBeGreaterThan(50);
    expect(closed.error).toBeUndefined();
  });

  test('IPv6 through the ::1 listener', async () => {
    const r = await app.exec(['curl', '-sS', '--max-time', '8', 'http://[2001:db8:5::2]:8080/'], APP_UID);
    expect(r.stdout).toContain('detour-e2e-upstream');
    await dataplane.waitFor((l) => l.originalDestination === '[2001:db8:5::2]:8080', 'IPv6 connection line');
  });

  test('inbound: a connection from the network is forwarded to the local app', async () => {
    const r = await net.exec(['curl', '-sS', '--max-time', '8', 'http://198.51.100.1:9090/']);
    expect(r.stdout).toContain('detour-e2e-app');
    const open = await dataplane.waitFor(
      (l) => l.msg === 'inbound connection' && l.originalDestination === '198.51.100.1:9090',
      'inbound connection line',
    );
    expect(open).toMatchObject({ direction: 'inbound' });
    expect(open.source).toMatch(/^198\.51\.100\.2:\d+$/);
  });

  test('a refused upstream: the application sees a failure, the log says ECONNREFUSED', async () => {
    const r = await app.exec(['curl', '-sS', '--max-time', '8', 'http://198.51.100.2:8099/'], APP_UID);
    expect(r.exitCode).not.toBe(0);
    await dataplane.waitFor(
      (l) =>
        l.msg === 'upstream connect failed' &&
        l.originalDestination === '198.51.100.2:8099' &&
        l.reason === 'ECONNREFUSED',
      'connect failure line',
    );
  });

  test('an upstream that never answers: connect timeout', async () => {
    const r = await app.exec(['curl', '-sS', '--max-time', '8', 'http://203.0.113.9:80/'], APP_UID);
    expect(r.exitCode).not.toBe(0);
    await dataplane.waitFor(
      (l) =>
        l.msg === 'upstream connect failed' &&
        l.originalDestination === '203.0.113.9:80' &&
        l.reason === 'ETIMEDOUT',
      'connect timeout line',
    );
  });

  test('a direct connection to the outbound port is closed with a log line, never looped', async () => {
    const before = outboundLines().length;
    for (const url of ['http://127.0.0.1:15001/', 'http://[::1]:15001/']) {
      const r = await app.exec(['curl', '-sS', '--max-time', '8', url], APP_UID);
      expect(r.exitCode).not.toBe(0); // empty reply: closed without an answer
    }
    const refused = await dataplane.waitFor(
      (l) => l.msg === 'connection not redirected; closing' && l.listener === '[::1]:15001',
      'not-redirected line',
    );
    expect(refused).toMatchObject({ level: 40, reason: expect.stringContaining('listener itself') });
    expect(dataplane.lines.filter((l) => l.msg === 'connection not redirected; closing')).toHaveLength(2);
    await sleep(200);
    expect(outboundLines()).toHaveLength(before);
  });

  test('SIGTERM closes the listeners and exits 0', async () => {
    process.kill(dataplane.pid, 'SIGTERM');
    expect(await dataplane.exited).toBe(0);
    expect(dataplane.lines.some((l) => l.msg === 'shutting down')).toBe(true);
  });
});

describe('detour dataplane: config file, passthrough off, a host without IPv6', () => {
  let ns: Namespace;
  let dataplane: Proc;

  beforeAll(async () => {
    ns = await Namespace.create('cfg');
    await execa('ip', [
      'netns',
      'exec',
      ns.name,
      'sysctl',
      '-qw',
      'net.ipv6.conf.all.disable_ipv6=1',
      'net.ipv6.conf.lo.disable_ipv6=1',
    ]);
    await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ns.ip('link', 'set', 'v0', 'up');
    await ns.ip('link', 'set', 'v1', 'up');
    await ns.ip('addr', 'add', '198.51.100.1/24', 'dev', 'v0');
    await ns.rules('iptables', [
      [
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-m',
        'owner',
        '--uid-owner',
        APP_UID,
        '-j',
        'REDIRECT',
        '--to-ports',
        '16001',
      ],
    ]);
    const config = join(scratch, 'detour.yaml');
    writeFileSync(
      config,
      'listeners:\n  outbound: { port: 16001 }\n  inbound: { enabled: true, port: 16006 }\npassthrough: false\n',
    );
    dataplane = ns.spawn(
      [NODE, 'bin/detour.js', 'dataplane', '--config', config, '--no-inbound', '--user', DATAPLANE_UID],
      REPO,
    );
    await dataplane.waitFor((l) => l.msg === 'ready', 'dataplane ready line');
  }, 60_000);

  test('file values apply, --no-inbound overrides the file, ::1 is skipped with a log line', () => {
    expect(dataplane.lines.find((l) => l.msg === 'ready')).toMatchObject({
      listeners: ['outbound 127.0.0.1:16001'],
      passthrough: false,
    });
    expect(dataplane.lines.find((l) => l.msg === 'no IPv6 on this host; skipping listener')).toMatchObject({
      listener: 'outbound [::1]:16001',
    });
  });

  test('passthrough off: a redirected connection is refused with a log line', async () => {
    const r = await curl(ns, 'http://198.51.100.7:80/', APP_UID);
    expect(r.exitCode).not.toBe(0);
    const refused = await dataplane.waitFor((l) => l.msg === 'connection refused', 'refusal line');
    expect(refused).toMatchObject({
      originalDestination: '198.51.100.7:80',
      reason: 'passthrough disabled and not a destination',
    });
  });
});
