// The lab's network: addresses (documentation ranges only) and the `ip` commands that build it.
// Every command runs inside one of the lab's namespaces (`ip -n <ns>` / `ip netns exec <ns>`); the
// veth pair is created inside `app` with its peer placed straight into `net`, so no interface ever
// appears in the host's namespace. The server addresses live on `net`'s loopback (local delivery
// works the same as on a dummy interface, and the test machines' kernels have no dummy driver).
import type { LabNames } from './names.js';

export interface LabAddresses {
  appV4: string;
  netV4: string;
  appV6: string;
  netV6: string;
  serverV4: string;
  serverV6: string;
  server2V4: string;
  dnsV4: string;
  dnsV6: string;
  /** The onprem namespace (createLab({ onprem: true })): its address and net's end of their link. */
  onpremV4: string;
  onpremNetV4: string;
  onpremV6: string;
  onpremNetV6: string;
  /** Prefix length of the app–net link (IPv4); the IPv6 link is a /64. */
  prefixV4: number;
}

export const ADDRESSES: Readonly<LabAddresses> = Object.freeze({
  appV4: '192.0.2.2',
  netV4: '192.0.2.1',
  appV6: '2001:db8:1::2',
  netV6: '2001:db8:1::1',
  serverV4: '198.51.100.10',
  server2V4: '198.51.100.11',
  dnsV4: '198.51.100.53',
  serverV6: '2001:db8:2::10',
  dnsV6: '2001:db8:2::53',
  onpremV4: '203.0.113.2',
  onpremNetV4: '203.0.113.1',
  onpremV6: '2001:db8:3::2',
  onpremNetV6: '2001:db8:3::1',
  prefixV4: 24,
});

/** Steps of createLab, in order; `failAfter` (tests only) names one of them. */
export const LAB_STEPS = ['namespaces', 'links', 'addresses', 'routes', 'resolv', 'ready'] as const;
export type LabStep = (typeof LAB_STEPS)[number];

export interface SetupCommand {
  step: 'links' | 'addresses' | 'routes';
  argv: string[];
}

/** The commands that wire up two existing, empty namespaces. */
export function setupCommands(n: LabNames, a: LabAddresses, ipv6: boolean): SetupCommand[] {
  const cmds: SetupCommand[] = [];
  const add = (step: SetupCommand['step'], ...argv: string[]): void => void cmds.push({ step, argv });
  add('links', 'ip', '-n', n.app, 'link', 'set', 'lo', 'up');
  add('links', 'ip', '-n', n.net, 'link', 'set', 'lo', 'up');
  for (const ns of [n.app, n.net]) {
    const sysctls = ipv6
      ? // No duplicate address detection, also for the link-local addresses the veth ends get, so the
        // lab is usable at once instead of after DAD's ~2 s.
        ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']
      : // A v4-only lab behaves like a host without IPv6: none at all in its namespaces (not even ::1).
        ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
    add('links', 'ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', ...sysctls);
  }
  add(
    'links',
    'ip',
    '-n',
    n.app,
    'link',
    'add',
    n.vethApp,
    'type',
    'veth',
    'peer',
    'name',
    n.vethNet,
    'netns',
    n.net,
  );
  add('links', 'ip', '-n', n.app, 'link', 'set', n.vethApp, 'up');
  add('links', 'ip', '-n', n.net, 'link', 'set', n.vethNet, 'up');

  add('addresses', 'ip', '-n', n.app, 'addr', 'add', `${a.appV4}/${a.prefixV4}`, 'dev', n.vethApp);
  add('addresses', 'ip', '-n', n.net, 'addr', 'add', `${a.netV4}/${a.prefixV4}`, 'dev', n.vethNet);
  for (const s of [a.serverV4, a.server2V4, a.dnsV4])
    add('addresses', 'ip', '-n', n.net, 'addr', 'add', `${s}/32`, 'dev', 'lo');
  if (ipv6) {
    add('addresses', 'ip', '-n', n.app, '-6', 'addr', 'add', `${a.appV6}/64`, 'dev', n.vethApp, 'nodad');
    add('addresses', 'ip', '-n', n.net, '-6', 'addr', 'add', `${a.netV6}/64`, 'dev', n.vethNet, 'nodad');
    for (const s of [a.serverV6, a.dnsV6])
      add('addresses', 'ip', '-n', n.net, '-6', 'addr', 'add', `${s}/128`, 'dev', 'lo', 'nodad');
  }

  add('routes', 'ip', '-n', n.app, 'route', 'add', 'default', 'via', a.netV4, 'dev', n.vethApp);
  if (ipv6)
    add('routes', 'ip', '-n', n.app, '-6', 'route', 'add', 'default', 'via', a.netV6, 'dev', n.vethApp);
  return cmds;
}

/**
 * The commands that join an existing, empty onprem namespace to net by its own veth pair. onprem gets
 * no default route and net does not forward (a new namespace's default), so only net reaches onprem.
 */
export function onpremCommands(n: LabNames, a: LabAddresses, ipv6: boolean): SetupCommand[] {
  const cmds: SetupCommand[] = [];
  const add = (step: SetupCommand['step'], ...argv: string[]): void => void cmds.push({ step, argv });
  add('links', 'ip', '-n', n.onprem, 'link', 'set', 'lo', 'up');
  add(
    'links',
    'ip',
    'netns',
    'exec',
    n.onprem,
    'sysctl',
    '-q',
    '-w',
    ...(ipv6
      ? ['net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']
      : ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']),
  );
  add(
    'links',
    'ip',
    '-n',
    n.onprem,
    'link',
    'add',
    n.vethOnprem,
    'type',
    'veth',
    'peer',
    'name',
    n.vethNetOnprem,
    'netns',
    n.net,
  );
  add('links', 'ip', '-n', n.onprem, 'link', 'set', n.vethOnprem, 'up');
  add('links', 'ip', '-n', n.net, 'link', 'set', n.vethNetOnprem, 'up');
  add('addresses', 'ip', '-n', n.onprem, 'addr', 'add', `${a.onpremV4}/${a.prefixV4}`, 'dev', n.vethOnprem);
  add(
    'addresses',
    'ip',
    '-n',
    n.net,
    'addr',
    'add',
    `${a.onpremNetV4}/${a.prefixV4}`,
    'dev',
    n.vethNetOnprem,
  );
  if (ipv6) {
    add(
      'addresses',
      'ip',
      '-n',
      n.onprem,
      '-6',
      'addr',
      'add',
      `${a.onpremV6}/64`,
      'dev',
      n.vethOnprem,
      'nodad',
    );
    add(
      'addresses',
      'ip',
      '-n',
      n.net,
      '-6',
      'addr',
      'add',
      `${a.onpremNetV6}/64`,
      'dev',
      n.vethNetOnprem,
      'nodad',
    );
  }
  // net must not route app's packets to onprem (explicit, whatever the kernel's default).
  add('routes', 'ip', 'netns', 'exec', n.net, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0');
  if (ipv6)
    add('routes', 'ip', 'netns', 'exec', n.net, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=0');
  return cmds;
}

/** resolv.conf of the app namespace as the lab writes it first. */
export function initialResolvConf(a: LabAddresses, search: string[] = []): string[] {
  return [...(search.length > 0 ? [`search ${search.join(' ')}`] : []), `nameserver ${a.dnsV4}`];
}
