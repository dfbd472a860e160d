// Standalone token server for the lab:
//   node dist/test/peers/oauth-server-cli.js '<json>'        or   ... --config server.json
// The JSON is OAuthServerOptions, except that `tls` names files: { "certFile": "...", "keyFile": "..." }.
// Prints "oauth ready <issuer url>" once listening; stops on SIGTERM/SIGINT (exit 0); bad config exits 2.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type OAuthServer, type OAuthServerOptions, startOAuthServer } from './oauth-server.js';

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

export function parseCliConfig(argv: string[]): OAuthServerOptions {
  const text =
    argv[0] === '--config'
      ? readFileSync(argv[1] ?? fail('--config needs a file name'), 'utf8')
      : (argv[0] ?? fail('usage: oauth-server-cli.js <json> | --config <file>'));
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    fail(`config is not JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object') fail('config must be a JSON object');
  const { tls, ...rest } = raw as Partial<OAuthServerOptions> & {
    tls?: { certFile?: string; keyFile?: string };
  };
  if (!Array.isArray(rest.clients) || rest.clients.length === 0)
    fail('config.clients must list at least one client');
  const options: OAuthServerOptions = { ...rest, clients: rest.clients };
  if (tls) {
    if (!tls.certFile || !tls.keyFile) fail('config.tls needs certFile and keyFile');
    options.tls = { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
  }
  return options;
}

/** Starts the server from argv; `exitCode` 2 (and no server) when the config is unusable. */
export async function main(argv: string[], io: CliIo): Promise<{ server?: OAuthServer; exitCode: number }> {
  let options: OAuthServerOptions;
  try {
    options = parseCliConfig(argv);
  } catch (error) {
    io.err(`oauth-server: ${(error as Error).message}`);
    return { exitCode: 2 };
  }
  const server = await startOAuthServer(options);
  io.out(`oauth ready ${server.url}`);
  return { server, exitCode: 0 };
}

function fail(message: string): never {
  throw new Error(message);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { server, exitCode } = await main(process.argv.slice(2), {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  });
  process.exitCode = exitCode;
  if (server) {
    const stop = () => void server.stop().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  }
}
