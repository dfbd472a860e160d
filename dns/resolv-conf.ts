// resolv.conf(5): the nameservers to forward to and the search suffixes to answer under. Pure except
// readResolvConf.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export interface ResolvConf {
  /** Every `nameserver` address, in order (also beyond glibc's 3). */
  nameservers: string[];
  /** The last `search` or `domain` line wins, as in glibc. */
  search: string[];
  /** `options` tokens, e.g. "ndots:5". */
  options: string[];
  /** Lines that could not be used, with the reason (for a warning). */
  ignored: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], options: [], ignored: [] };
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [keyword, ...args] = line.split(/\s+/);
    switch (keyword) {
      case 'nameserver': {
        const address = args[0] ?? '';
        if (isIP(address.split('%')[0]!) === 0)
          conf.ignored.push(`line ${i + 1}: "${line}": not an IP address`);
        else conf.nameservers.push(address);
        break;
      }
      case 'search':
        conf.search = args.filter((a) => !a.startsWith('#') && !a.startsWith(';'));
        break;
      case 'domain':
        conf.search = args[0] ? [args[0]] : [];
        break;
      case 'options':
        conf.options.push(...args);
        break;
      default:
        // sortlist, lookup and friends: nothing the DNS server needs.
        break;
    }
  }
  conf.search = conf.search.map((s) => s.replace(/\.+$/, '')).filter((s) => s !== '');
  return conf;
}

/** Reads and parses a resolv.conf; the error names the file. */
export function readResolvConf(path: string): ResolvConf {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path} for the upstream DNS servers: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return parseResolvConf(text);
}
