import { describe, expect, test } from '@jest/globals';
import { ConfigError } from '../../dataplane/config.js';
import { dropPrivileges, parsePasswd, resolveUser } from '../../dataplane/user.js';

const PASSWD = `root:x:0:0:root:/root:/bin/bash
# comment
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
detour:x:5678:5000::/home/detour:/bin/sh
broken line
`;

describe('user resolution', () => {
  test('parses passwd, skipping comments and junk', () => {
    expect(parsePasswd(PASSWD).map((e) => e.name)).toEqual(['root', 'nobody', 'detour']);
  });

  test('a name resolves through passwd', () => {
    expect(resolveUser('detour', PASSWD)).toEqual({ uid: 5678, gid: 5000, name: 'detour' });
  });

  test('a known uid takes its passwd gid; an unknown uid uses itself as gid', () => {
    expect(resolveUser('65534', PASSWD)).toEqual({ uid: 65534, gid: 65534, name: 'nobody' });
    expect(resolveUser('4242', PASSWD)).toEqual({ uid: 4242, gid: 4242 });
  });

  test('an unknown name is bad input (exit 2)', () => {
    expect(() => resolveUser('nosuch', PASSWD)).toThrow(ConfigError);
    expect(() => resolveUser('nosuch', PASSWD)).toThrow('--user: no such user "nosuch"');
  });
});

describe('dropPrivileges', () => {
  function fakeProcess(uid: number) {
    const calls: string[] = [];
    return {
      calls,
      getuid: () => uid,
      setgroups: (g: number[]) => void calls.push(`setgroups ${JSON.stringify(g)}`),
      setgid: (id: number) => void calls.push(`setgid ${id}`),
      setuid: (id: number) => void calls.push(`setuid ${id}`),
    };
  }

  test('as root: groups, then gid, then uid', () => {
    const proc = fakeProcess(0);
    dropPrivileges({ uid: 5678, gid: 5000 }, proc);
    expect(proc.calls).toEqual(['setgroups []', 'setgid 5000', 'setuid 5678']);
  });

  test('already that user: nothing to do', () => {
    const proc = fakeProcess(5678);
    dropPrivileges({ uid: 5678, gid: 5678 }, proc);
    expect(proc.calls).toEqual([]);
  });

  test('not root and another user: refused', () => {
    expect(() => dropPrivileges({ uid: 5678, gid: 5678 }, fakeProcess(1000))).toThrow(/not running as root/);
  });
});
