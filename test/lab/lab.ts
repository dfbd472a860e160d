// The network-namespace test lab: an `app` namespace (the pod or VM) and a `net` namespace (the
// upstream world) joined by a veth pair, with documentation-range addresses that exist only there.
// Nothing here touches the host's own network namespace; everything is deleted again by destroy(),
// by a process 'exit' hook if destroy() never ran, or by cleanupStaleLabs() after a killed run.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand, spawnBackground, type Background, type RunOptions, type RunResult } from './exec.js';
import { labNames } from './names.js';
import { startNginx, type HttpServer, type NginxTls } from './nginx.js';
import {
  ADDRESSES,
  initialResolvConf,
  onpremCommands,
  setupCommands,
  type LabAddresses,
  type LabStep,
} from './topology.js';
import { ETC_NETNS, listNamespaces, teardownSync, track, untrack, type LabResources } from './teardown.js';

export type { Background, RunOptions, RunResult } from './exec.js';
export { CommandError } from './exec.js';
export type { HttpServer, NginxTls } from './nginx.js';
export { ADDRESSES, LAB_STEPS, type LabAddresses, type LabStep } from './topology.js';
export { cleanupStaleLabs, liveLabIds } from './teardown.js';

export type LabNs = 'app' | 'net' | 'onprem';

export interface Lab {
  /** `dtlab-<pid>-<hex>`; both namespace names start with it. */
  id: string;
  /** Namespace names. */
  app: string;
  net: string;
  /** The on-premise namespace's name when created with `onprem: true` (reachable from net only). */
  onprem?: string;
  addr: LabAddresses;
  ipv6: boolean;
  /** Interface names of the veth ends inside app and net (the server addresses are on net's lo); with
   * onprem also the onprem–net pair's ends (`onprem` inside onprem, `netOnprem` inside net). */
  interfaces: { app: string; net: string; onprem?: string; netOnprem?: string };
  /** A temp directory the lab owns (removed by destroy); tests may put files there. */
  dir: string;
  /** `ip netns exec <ns> [setpriv --reuid U --regid U --clear-groups --] argv`. */
  run(ns: LabNs, argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** A long-running process in a namespace; stopped (by PID) on destroy. */
  spawn(ns: LabNs, argv: string[], opts?: Omit<RunOptions, 'reject'> & { logFile?: string }): Background;
  /**
   * nginx in `net` on serverV4, server2V4 and [serverV6] (if ipv6); with `ns: 'onprem'` in onprem on
   * onpremV4 and [onpremV6]. Port 80 by default (8080, 8081, ... for further servers in the same
   * namespace). Responds 200 "<body> from <server addr>:<port> to <client addr>\n".
   */
  startHttpServer(opts?: {
    port?: number;
    body?: string;
    tls?: NginxTls;
    ns?: 'net' | 'onprem';
  }): Promise<HttpServer>;
  /** Replaces /etc/netns/<app>/resolv.conf (what commands run in `app` see as /etc/resolv.conf). */
  writeResolvConf(lines: string[]): Promise<void>;
  destroy(): Promise<void>;
}

export interface CreateLabOptions {
  /** Default: on when the kernel has IPv6. false: v4-only, IPv6 disabled inside both namespaces. */
  ipv6?: boolean;
  /** Search suffixes for the app's initial resolv.conf. */
  search?: string[];
  /** Also create the `onprem` namespace, joined to net only (203.0.113.0/24, 2001:db8:3::/64). */
  onprem?: boolean;
  /** For tests of the lab itself: fail on purpose right after this step. */
  failAfter?: LabStep;
}

const kernelHasIpv6 = (): boolean => existsSync('/proc/sys/net/ipv6');

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function uniqueNames(): ReturnType<typeof labNames> {
  const existing = new Set(listNamespaces());
  for (let i = 0; i < 100; i++) {
    const n = labNames();
    if (!existing.has(n.app) && !existing.has(n.net) && !existsSync(join(ETC_NETNS, n.app))) return n;
  }
  throw new Error('createLab: could not find an unused lab name');
}

export async function createLab(opts: CreateLabOptions = {}): Promise<Lab> {
  if (opts.ipv6 === true && !kernelHasIpv6())
    throw new Error('createLab: ipv6 requested but the kernel has no IPv6');
  const ipv6 = opts.ipv6 ?? kernelHasIpv6();
  const names = uniqueNames();
  const addr: LabAddresses = { ...ADDRESSES };
  const res: LabResources = { id: names.id, namespaces: [], dirs: [], pids: new Set() };
  track(res);
  const etcDir = join(ETC_NETNS, names.app);
  const resolvConf = join(etcDir, 'resolv.conf');
  let step: LabStep = 'namespaces';
  let dir = '';
  const done = (s: LabStep): void => {
    if (opts.failAfter === s) throw new Error(`forced failure after step "${s}" (failAfter)`);
  };
  const ensureUp = async (): Promise<void> => {
    const links = await runCommand(['ip', '-n', names.app, '-o', 'link', 'show', 'dev', names.vethApp]);
    const peer = await runCommand(['ip', '-n', names.net, '-o', 'link', 'show', 'dev', names.vethNet]);
    if (!/state UP/.test(links.stdout) || !/state UP/.test(peer.stdout))
      throw new Error(`veth not up yet:\n${links.stdout}${peer.stdout}`);
    if (ipv6) {
      for (const ns of [names.app, names.net]) {
        const t = await runCommand(['ip', '-n', ns, '-6', 'addr', 'show', 'tentative']);
        if (t.stdout.trim()) throw new Error(`tentative IPv6 addresses in ${ns}:\n${t.stdout}`);
        const f = await runCommand(['ip', '-n', ns, '-6', 'addr', 'show', 'dadfailed']);
        if (f.stdout.trim())
          throw new Error(`IPv6 duplicate address detection failed in ${ns}:\n${f.stdout}`);
      }
    }
    if (opts.onprem) {
      const o = await runCommand(['ip', '-n', names.onprem, '-o', 'link', 'show', 'dev', names.vethOnprem]);
      const p = await runCommand(['ip', '-n', names.net, '-o', 'link', 'show', 'dev', names.vethNetOnprem]);
      if (!/state UP/.test(o.stdout) || !/state UP/.test(p.stdout))
        throw new Error(`onprem veth not up yet:\n${o.stdout}${p.stdout}`);
    }
  };
  try {
    dir = mkdtempSync(join(tmpdir(), `${names.id}-`));
    res.dirs.push(dir);
    for (const ns of opts.onprem ? [names.app, names.net, names.onprem] : [names.app, names.net]) {
      await runCommand(['ip', 'netns', 'add', ns]);
      res.namespaces.push(ns);
    }
    done(step);
    const cmds = [
      ...setupCommands(names, addr, ipv6),
      ...(opts.onprem ? onpremCommands(names, addr, ipv6) : []),
    ];
    for (const s of ['links', 'addresses', 'routes'] as const) {
      step = s;
      for (const c of cmds.filter((c) => c.step === s)) await runCommand(c.argv);
      done(step);
    }
    step = 'resolv';
    res.dirs.push(etcDir);
    mkdirSync(etcDir, { recursive: true });
    writeFileSync(resolvConf, initialResolvConf(addr, opts.search).join('\n') + '\n');
    done(step);
    step = 'ready';
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        await ensureUp();
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(50);
      }
    }
    done(step);
  } catch (e) {
    const cleanupErrors = teardownSync(res);
    untrack(res.id);
    const msg = `createLab failed at step "${step}": ${(e as Error).message}`;
    throw new Error(
      cleanupErrors.length > 0 ? `${msg}\ncleanup also failed: ${cleanupErrors.join('; ')}` : msg,
      { cause: e },
    );
  }

  const backgrounds = new Set<Background>();
  const usedPorts = new Set<string>();
  const nextPort = { net: 8080, onprem: 8080 };
  let destroying: Promise<void> | undefined;
  const nsName = (ns: LabNs): string => {
    if (ns === 'app') return names.app;
    if (ns === 'net') return names.net;
    if (ns === 'onprem') {
      if (!opts.onprem) throw new Error('lab: no onprem namespace (create the lab with { onprem: true })');
      return names.onprem;
    }
    throw new Error(`lab: unknown namespace ${String(ns)} (app, net or onprem)`);
  };
  const nsArgv = (ns: LabNs, argv: string[], uid?: number): string[] => {
    if (argv.length === 0) throw new Error('lab: empty command');
    const drop =
      uid === undefined
        ? []
        : ['setpriv', '--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--'];
    return ['ip', 'netns', 'exec', nsName(ns), ...drop, ...argv];
  };
  const alive = (what: string): void => {
    if (destroying) throw new Error(`lab ${names.id}: ${what} after destroy()`);
  };

  const lab: Lab = {
    id: names.id,
    app: names.app,
    net: names.net,
    ...(opts.onprem ? { onprem: names.onprem } : {}),
    addr,
    ipv6,
    interfaces: {
      app: names.vethApp,
      net: names.vethNet,
      ...(opts.onprem ? { onprem: names.vethOnprem, netOnprem: names.vethNetOnprem } : {}),
    },
    dir,
    async run(ns, argv, runOpts = {}) {
      alive('run');
      return runCommand(nsArgv(ns, argv, runOpts.uid), runOpts);
    },
    spawn(ns, argv, spawnOpts = {}) {
      alive('spawn');
      const bg = spawnBackground(nsArgv(ns, argv, spawnOpts.uid), spawnOpts);
      res.pids.add(bg.pid);
      backgrounds.add(bg);
      void bg.exited.then(() => {
        res.pids.delete(bg.pid);
        backgrounds.delete(bg);
      });
      return bg;
    },
    async startHttpServer(httpOpts = {}) {
      alive('startHttpServer');
      const ns = httpOpts.ns ?? 'net';
      nsName(ns);
      const key = (p: number): string => `${ns}:${p}`;
      let port = httpOpts.port;
      if (port === undefined) {
        port = usedPorts.has(key(80)) ? nextPort[ns]++ : 80;
        while (usedPorts.has(key(port))) port = nextPort[ns]++;
      }
      if (usedPorts.has(key(port)))
        throw new Error(`startHttpServer: port ${port} is already used by another lab HTTP server in ${ns}`);
      usedPorts.add(key(port));
      const p = port;
      const addresses =
        ns === 'onprem'
          ? [addr.onpremV4, ...(ipv6 ? [addr.onpremV6] : [])]
          : [addr.serverV4, addr.server2V4, ...(ipv6 ? [addr.serverV6] : [])];
      try {
        const server = await startNginx(
          {
            dir: join(dir, ns === 'net' ? `nginx-${p}` : `nginx-${ns}-${p}`),
            addresses,
            port: p,
            body: httpOpts.body ?? 'hello',
            ...(httpOpts.tls ? { tls: httpOpts.tls } : {}),
          },
          (argv, logFile) => lab.spawn(ns, argv, { logFile }),
          async () => (await lab.run(ns, ['ss', '-Hltnp'])).stdout,
        );
        return {
          ...server,
          stop: async () => {
            await server.stop();
            usedPorts.delete(key(p));
          },
        };
      } catch (e) {
        usedPorts.delete(key(p));
        throw e;
      }
    },
    async writeResolvConf(lines) {
      alive('writeResolvConf');
      mkdirSync(etcDir, { recursive: true });
      writeFileSync(resolvConf, lines.join('\n') + '\n');
    },
    destroy() {
      destroying ??= (async () => {
        // Graceful first (SIGTERM, SIGKILL after 5 s), then whatever is left goes with the namespaces.
        await Promise.all([...backgrounds].map((b) => b.stop().catch(() => undefined)));
        const errors = teardownSync(res);
        untrack(res.id);
        if (errors.length > 0)
          throw new Error(`lab ${names.id}: destroy left things behind: ${errors.join('; ')}`);
      })();
      return destroying;
    },
  };
  return lab;
}
