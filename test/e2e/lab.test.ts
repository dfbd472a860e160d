// The namespace lab itself: topology, HTTP through real nginx, uid switching, resolv.conf, process
// handling, and above all that it leaves the host as it found it, also when things go wrong.
// Needs root (creates network namespaces).
import { describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { cleanupStaleLabs, createLab, LAB_STEPS, liveLabIds } from '../lab/lab.js';
import { runCommand, spawnBackground } from '../lab/exec.js';
import { useLab } from '../lab/jest.js';
import { listNamespaces, namespacePids } from '../lab/teardown.js';

const sh = async (...argv: string[]): Promise<string> => (await runCommand(argv)).stdout;

/** Read-only view of the host's network namespace and resolver. */
async function hostSnapshot(): Promise<Record<string, string>> {
  return {
    addr: await sh('ip', '-o', 'addr'),
    link: await sh('ip', '-o', 'link'),
    route: await sh('ip', 'route'),
    route6: await sh('ip', '-6', 'route'),
    resolv: readFileSync('/etc/resolv.conf', 'utf8'),
  };
}

/** Whether pid is a live process (a zombie waiting for its reaper counts as gone). */
const isRunning = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

/** Everything on the host that could belong to a lab of this process: namespaces, /etc/netns entries,
 * temp dirs. (Labs of other test workers running at the same time are not counted.) */
function labTraces(): string[] {
  const ours = (n: string): boolean => n.startsWith(`dtlab-${process.pid}-`);
  return [
    ...listNamespaces().filter(ours),
    ...(existsSync('/etc/netns')
      ? readdirSync('/etc/netns')
          .filter(ours)
          .map((n) => `/etc/netns/${n}`)
      : []),
    ...readdirSync(tmpdir())
      .filter(ours)
      .map((n) => join(tmpdir(), n)),
  ].sort();
}

/** Asserts that nothing of lab `id` exists any more. */
function expectGone(lab: { id: string; app: string; net: string; dir: string }): void {
  expect(listNamespaces().filter((n) => n.startsWith(lab.id))).toEqual([]);
  expect(existsSync(`/etc/netns/${lab.app}`)).toBe(false);
  expect(existsSync(lab.dir)).toBe(false);
  expect(labTraces().filter((t) => t.includes(lab.id))).toEqual([]);
}

describe('dual-stack lab', () => {
  const lab = useLab();

  test('comes up with both namespaces, addresses and default routes', async () => {
    const l = lab();
    expect(l.ipv6).toBe(true);
    expect(listNamespaces()).toEqual(expect.arrayContaining([l.app, l.net]));
    expect(l.app).toMatch(new RegExp(`^dtlab-${process.pid}-[0-9a-f]{4}-app$`));
    for (const name of Object.values(l.interfaces)) expect(name.length).toBeLessThanOrEqual(15);

    const appAddr = (await l.run('app', ['ip', '-o', 'addr'])).stdout;
    expect(appAddr).toContain(`inet ${l.addr.appV4}/24`);
    expect(appAddr).toContain(`inet6 ${l.addr.appV6}/64`);
    expect(appAddr).not.toContain('tentative');
    const netAddr = (await l.run('net', ['ip', '-o', 'addr'])).stdout;
    for (const a of [
      l.addr.netV4,
      l.addr.serverV4,
      l.addr.server2V4,
      l.addr.dnsV4,
      l.addr.netV6,
      l.addr.serverV6,
      l.addr.dnsV6,
    ]) {
      expect(netAddr).toContain(` ${a}/`);
    }
    expect((await l.run('app', ['ip', 'route'])).stdout).toContain(
      `default via ${l.addr.netV4} dev ${l.interfaces.app}`,
    );
    expect((await l.run('app', ['ip', '-6', 'route'])).stdout).toContain(
      `default via ${l.addr.netV6} dev ${l.interfaces.app}`,
    );
    // The lab's interfaces exist only inside its namespaces.
    expect(await sh('ip', '-o', 'link')).not.toContain(l.interfaces.app);
  });

  test('app reaches the servers over IPv4 and IPv6 through nginx, from its own address', async () => {
    const l = lab();
    const srv = await l.startHttpServer();
    expect(srv.port).toBe(80);
    const get = async (url: string): Promise<string> =>
      (await l.run('app', ['curl', '-sS', '--max-time', '5', url])).stdout;
    expect(await get(`http://${l.addr.serverV4}/`)).toBe(
      `hello from ${l.addr.serverV4}:80 to ${l.addr.appV4}\n`,
    );
    expect(await get(`http://${l.addr.server2V4}/x`)).toBe(
      `hello from ${l.addr.server2V4}:80 to ${l.addr.appV4}\n`,
    );
    expect(await get(`http://[${l.addr.serverV6}]/`)).toBe(
      `hello from ${l.addr.serverV6}:80 to ${l.addr.appV6}\n`,
    );
    const log = await srv.accessLog();
    expect(log).toContain(`${l.addr.appV4}:`);
    expect(log).toContain(`-> ${l.addr.server2V4}:80 "GET /x HTTP/1.1" 200`);
    expect(log).toContain(`${l.addr.appV6}:`);

    // A second server gets its own port and body; stopping one leaves the other running.
    const srv2 = await l.startHttpServer({ body: 'second' });
    expect(srv2.port).toBe(8080);
    expect(await get(`http://${l.addr.serverV4}:8080/`)).toBe(
      `second from ${l.addr.serverV4}:8080 to ${l.addr.appV4}\n`,
    );
    await srv2.stop();
    const refused = await l.run(
      'app',
      ['curl', '-sS', '--max-time', '5', `http://${l.addr.serverV4}:8080/`],
      { reject: false },
    );
    expect(refused.exitCode).toBe(7); // connection refused
    expect(await get(`http://${l.addr.serverV4}/`)).toContain('hello from');
    await srv.stop();
  });

  test('a server that cannot start says why', async () => {
    const l = lab();
    const listening = async (hp: string): Promise<void> => {
      for (let i = 0; i < 100 && !(await l.run('net', ['ss', '-Hltn'])).stdout.includes(`${hp} `); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    // Someone else on one of the server addresses: refused before nginx is started.
    const squatter = l.spawn('net', [
      'socat',
      `TCP-LISTEN:81,bind=${l.addr.serverV4},reuseaddr,fork`,
      'SYSTEM:true',
    ]);
    // Someone on the wildcard address: nginx itself fails to bind (after its own retries) and exits.
    const wildcard = l.spawn('net', ['socat', 'TCP-LISTEN:82,reuseaddr,fork', 'SYSTEM:true']);
    try {
      await listening(`${l.addr.serverV4}:81`);
      await listening('0.0.0.0:82');
      await expect(l.startHttpServer({ port: 81 })).rejects.toThrow(
        /port 81 is already in use in the net namespace:\n.*198\.51\.100\.10:81 .*socat/,
      );
      await expect(l.startHttpServer({ port: 82 })).rejects.toThrow(
        /nginx for port 82 exited during start-up: .*Address already in use/s,
      );
    } finally {
      await squatter.stop();
      await wildcard.stop();
    }
    await expect(l.startHttpServer({ body: 'no "quotes"' })).rejects.toThrow(/body/);
  });

  test('run executes as the given uid, with the given env and input', async () => {
    const l = lab();
    expect((await l.run('app', ['id', '-u'])).stdout.trim()).toBe('0');
    expect((await l.run('app', ['id', '-u'], { uid: 5678 })).stdout.trim()).toBe('5678');
    expect((await l.run('app', ['id', '-G'], { uid: 5678 })).stdout.trim()).toBe('5678');
    expect((await l.run('net', ['sh', '-c', 'echo "$LAB_X"'], { env: { LAB_X: 'y z' } })).stdout).toBe(
      'y z\n',
    );
    expect((await l.run('app', ['cat'], { input: 'abc' })).stdout).toBe('abc');
  });

  test('failing commands say which command failed and what it printed', async () => {
    const l = lab();
    const argv = ['sh', '-c', 'echo oops-on-stderr >&2; exit 3'];
    await expect(l.run('app', argv)).rejects.toThrow(
      /failed \(exit 3\).*ip netns exec dtlab-.*-app sh -c .*\n.*oops-on-stderr/s,
    );
    expect(await l.run('app', argv, { reject: false })).toEqual({
      exitCode: 3,
      stdout: '',
      stderr: 'oops-on-stderr\n',
    });
    await expect(l.run('app', ['sleep', '10'], { timeoutMs: 200 })).rejects.toThrow(
      /timed out after 200 ms.*sleep 10/,
    );
  });

  test('resolv.conf inside app shows the lab nameserver, and only there', async () => {
    const l = lab();
    const hostResolv = readFileSync('/etc/resolv.conf', 'utf8');
    expect(await sh('ip', 'netns', 'exec', l.app, 'cat', '/etc/resolv.conf')).toBe(
      `nameserver ${l.addr.dnsV4}\n`,
    );
    await l.writeResolvConf([
      'search corp.example.test',
      `nameserver ${l.addr.dnsV4}`,
      `nameserver ${l.addr.dnsV6}`,
    ]);
    expect((await l.run('app', ['cat', '/etc/resolv.conf'])).stdout).toBe(
      `search corp.example.test\nnameserver ${l.addr.dnsV4}\nnameserver ${l.addr.dnsV6}\n`,
    );
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(hostResolv);
  });

  test('spawned processes: output, waitFor, uid, log file, stop', async () => {
    const l = lab();
    const logFile = join(l.dir, 'bg.log');
    const bg = l.spawn(
      'app',
      ['sh', '-c', 'echo starting; id -u; echo "ready on $PORT" >&2; exec sleep 60'],
      {
        uid: 5678,
        env: { PORT: '1234' },
        logFile,
      },
    );
    expect(await bg.waitFor(/ready on \d+/)).toBe('ready on 1234');
    expect(bg.output()).toContain('5678\n');
    await expect(bg.waitFor(/never printed/, 200)).rejects.toThrow(
      /timed out after 200 ms waiting for \/never printed\//,
    );
    expect(namespacePids(l.app)).toContain(bg.pid);
    await bg.stop();
    expect(await bg.exited).toBeNull(); // ended by SIGTERM
    expect(isRunning(bg.pid)).toBe(false);
    expect(readFileSync(logFile, 'utf8')).toContain('ready on 1234');

    const bounded = l.spawn('net', ['sleep', '60'], { timeoutMs: 200 });
    expect(await bounded.exited).toBeNull();

    const quick = l.spawn('net', ['sh', '-c', 'echo bye; exit 4']);
    await expect(quick.waitFor(/never/)).rejects.toThrow(/exited before printing/);
    expect(await quick.exited).toBe(4);
  });
});

describe('v4-only lab', () => {
  const lab = useLab({ ipv6: false, search: ['example.test'] });

  test('has no IPv6 at all, and HTTP over IPv4 works', async () => {
    const l = lab();
    expect(l.ipv6).toBe(false);
    expect((await l.run('app', ['ip', '-6', 'addr'])).stdout.trim()).toBe('');
    expect((await l.run('net', ['ip', '-6', 'addr'])).stdout.trim()).toBe('');
    expect((await l.run('app', ['cat', '/etc/resolv.conf'])).stdout).toBe(
      `search example.test\nnameserver ${l.addr.dnsV4}\n`,
    );
    const srv = await l.startHttpServer({ body: 'v4' });
    const r = await l.run('app', ['curl', '-sS', '--max-time', '5', `http://${l.addr.serverV4}/`]);
    expect(r.stdout).toBe(`v4 from ${l.addr.serverV4}:80 to ${l.addr.appV4}\n`);
    await srv.stop();
  });
});

describe('lab lifecycle', () => {
  test('leaves the host namespace unchanged and removes namespaces, files and processes', async () => {
    cleanupStaleLabs();
    const before = await hostSnapshot();
    const lab = await createLab();
    let pids: number[] = [];
    try {
      // While the lab is up, nothing of it is visible in the host's namespace. (Note: the test machine's
      // own eth0 may well use 192.0.2.2/24 itself; the lab's namespaces are separate from it.)
      expect(await hostSnapshot()).toEqual(before);
      expect(JSON.stringify(before)).not.toContain(lab.interfaces.app);
      await lab.startHttpServer();
      const bg = lab.spawn('app', ['sleep', '60']);
      pids = [...namespacePids(lab.net), ...namespacePids(lab.app)];
      expect(pids).toContain(bg.pid);
      expect(pids.length).toBeGreaterThanOrEqual(3); // nginx master + worker, sleep
      expect(existsSync(`/etc/netns/${lab.app}/resolv.conf`)).toBe(true);
      expect(liveLabIds()).toContain(lab.id);
    } finally {
      await lab.destroy();
    }
    expectGone(lab);
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
    expect(liveLabIds()).not.toContain(lab.id);
    expect(await hostSnapshot()).toEqual(before);
    await lab.destroy(); // idempotent
    await expect(lab.run('app', ['true'])).rejects.toThrow(/after destroy/);
  });

  test.each(LAB_STEPS)('a lab failing after step "%s" leaves nothing behind', async (step) => {
    const before = labTraces();
    const live = liveLabIds();
    await expect(createLab({ failAfter: step })).rejects.toThrow(
      new RegExp(`createLab failed at step "${step}": forced failure`),
    );
    expect(labTraces()).toEqual(before);
    expect(liveLabIds()).toEqual(live);
  });

  test('a lab whose process exits without destroy() is torn down by the exit hook', () => {
    const labModule = resolve('test/lab/lab.ts');
    // Node runs the lab's TypeScript by type stripping; `.js` imports are mapped to the `.ts` files.
    const script = `
      import { registerHooks } from 'node:module';
      registerHooks({ resolve(spec, ctx, next) {
        try { return next(spec, ctx); } catch (e) { if (spec.endsWith('.js')) return next(spec.slice(0, -3) + '.ts', ctx); throw e; }
      } });
      const { createLab } = await import(${JSON.stringify(labModule)});
      const lab = await createLab();
      await lab.startHttpServer();
      console.log(JSON.stringify({ id: lab.id, app: lab.app, net: lab.net, dir: lab.dir }));
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const child = JSON.parse(r.stdout) as { id: string; app: string; net: string; dir: string };
    expect(child.id).toMatch(/^dtlab-\d+-[0-9a-f]{4}$/);
    expectGone(child);
  });

  test('cleanupStaleLabs removes what a killed run left behind, and nothing else', async () => {
    // A run that is killed (SIGKILL: no exit hook) leaves its namespaces, files and nginx behind.
    const labModule = resolve('test/lab/lab.ts');
    const script = `
      import { registerHooks } from 'node:module';
      registerHooks({ resolve(spec, ctx, next) {
        try { return next(spec, ctx); } catch (e) { if (spec.endsWith('.js')) return next(spec.slice(0, -3) + '.ts', ctx); throw e; }
      } });
      const { createLab } = await import(${JSON.stringify(labModule)});
      const lab = await createLab();
      await lab.startHttpServer();
      console.log(JSON.stringify({ id: lab.id, app: lab.app, net: lab.net, dir: lab.dir }));
      setInterval(() => {}, 1000);
    `;
    const child = spawnBackground([process.execPath, '--no-warnings', '--input-type=module', '-e', script]);
    let killed: { id: string; app: string; net: string; dir: string };
    try {
      killed = JSON.parse(await child.waitFor(/^\{"id"/m, 30_000)) as typeof killed;
    } finally {
      process.kill(child.pid, 'SIGKILL');
      await child.exited;
    }
    expect(listNamespaces()).toEqual(expect.arrayContaining([killed.app, killed.net]));
    const orphans = namespacePids(killed.net);
    expect(orphans.length).toBeGreaterThan(0); // nginx outlived its parent

    // Leftovers named like a lab of a live process (ours) must stay, as must foreign names.
    const liveId = `dtlab-${process.pid}-0f0f`;
    const foreign = `dtlabx-${process.pid}-app`;
    await sh('ip', 'netns', 'add', `${liveId}-app`);
    await sh('ip', 'netns', 'add', foreign);
    mkdirSync(`/etc/netns/${liveId}-app`, { recursive: true });
    writeFileSync(`/etc/netns/${liveId}-app/resolv.conf`, 'nameserver 192.0.2.53\n');
    try {
      const removed = cleanupStaleLabs();
      expect(removed).toContain(killed.id);
      expect(removed).not.toContain(liveId);
      expectGone(killed);
      for (const pid of orphans) expect(isRunning(pid)).toBe(false);
      expect(listNamespaces()).toEqual(expect.arrayContaining([`${liveId}-app`, foreign]));
      expect(existsSync(`/etc/netns/${liveId}-app/resolv.conf`)).toBe(true);
    } finally {
      await sh('ip', 'netns', 'del', `${liveId}-app`);
      await sh('ip', 'netns', 'del', foreign);
      await sh('rm', '-rf', `/etc/netns/${liveId}-app`);
    }
  });
});
