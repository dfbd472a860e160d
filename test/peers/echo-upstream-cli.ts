// Standalone echo upstream for the lab: `node dist/test/peers/echo-upstream-cli.js <host> <port>`.
// Answers every request with JSON of what it received (method, path, headers); prints
// "echo ready <origin>" once listening; stops on SIGTERM/SIGINT.
import { startEchoUpstream } from './echo-upstream.js';

const [host = '127.0.0.1', port = '0'] = process.argv.slice(2);
const upstream = await startEchoUpstream({ host, port: Number(port) });
console.log(`echo ready ${upstream.origin}`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void upstream.close().finally(() => process.exit(0)));
}
