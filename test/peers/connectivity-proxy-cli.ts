// Standalone connectivity proxy stand-in for the lab:
//   node dist/test/peers/connectivity-proxy-cli.js '<json>'     or   ... --config proxy.json
// The JSON is ConnectivityProxyOptions (see README.md). Prints
//   "connectivity-proxy ready http=<port> socks5=<port> admin=<port|none>"
// once listening; stops on SIGTERM/SIGINT (exit 0); a bad config exits 2 with the field named.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseOptions } from './connectivity-config.js';
import {
  type ConnectivityProxy,
  type ConnectivityProxyOptions,
  startConnectivityProxy,
} from './connectivity-proxy.js';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

export function parseCliConfig(argv: string[]): ConnectivityProxyOptions {
  let text: string;
  if (argv[0] === '--config') {
    if (!argv[1]) throw new ConfigError('--config needs a file name');
    text = readFileSync(argv[1], 'utf8');
  } else if (argv[0] !== undefined) text = argv[0];
  else throw new ConfigError('usage: connectivity-proxy-cli.js <json> | --config <file>');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config is not JSON: ${(error as Error).message}`);
  }
  return parseOptions(raw);
}

/** Starts the stand-in from argv; exitCode 2 (and no proxy) when the config is unusable. */
export async function main(
  argv: string[],
  io: CliIo,
): Promise<{ proxy?: ConnectivityProxy; exitCode: number }> {
  let options: ConnectivityProxyOptions;
  try {
    options = parseCliConfig(argv);
  } catch (error) {
    io.err(`connectivity-proxy: ${(error as Error).message}`);
    return { exitCode: 2 };
  }
  const proxy = await startConnectivityProxy(options);
  io.out(
    `connectivity-proxy ready http=${proxy.httpPort} socks5=${proxy.socksPort} admin=${proxy.adminPort ?? 'none'}`,
  );
  return { proxy, exitCode: 0 };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { proxy, exitCode } = await main(process.argv.slice(2), {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  });
  process.exitCode = exitCode;
  if (proxy) {
    const stop = () => void proxy.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }
}
