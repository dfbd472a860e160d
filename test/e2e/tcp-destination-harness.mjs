// A stand-in for the dataplane's TCP-destination route, for e2e tests of the egress paths before the
// dataplane's config can name proxies: listens on host:port (in the lab's app namespace) and hands
// every connection to the built pipeTcpDestination() with a destination parsed by the real parser and
// the ConnectivityProxy / EgressProxies given on the command line. Logs pino JSON lines on stdout.
//   node tcp-destination-harness.mjs '<json>'
//   json: { listen: { host, port }, destination: { Name, Type, Address, ProxyType, ... },
//           connectivityProxy?: { host, socks5Port, token?, tokenError? }, egressProxy?: EgressProxy }
import net from 'node:net';
import { parseDestination } from '../../dist/dataplane/destinations/parse.js';
import { createLogger } from '../../dist/dataplane/logger.js';
import { pipeTcpDestination } from '../../dist/dataplane/tcp-destination.js';

const spec = JSON.parse(process.argv[2] ?? '{}');
const log = createLogger('info');
const destination = parseDestination(spec.destination, { source: 'harness' });
const cp = spec.connectivityProxy;
const connectivityProxy = cp && {
  host: cp.host,
  httpPort: cp.httpPort ?? 20003,
  socks5Port: cp.socks5Port,
  token: async () => {
    if (cp.tokenError) throw new Error(cp.tokenError);
    return cp.token;
  },
};
const egressProxies = spec.egressProxy && { forTarget: () => spec.egressProxy };

const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
  socket.on('error', () => {});
  pipeTcpDestination(socket, destination, {
    logger: log.child({ component: 'tcp' }),
    connectTimeoutMs: destination.connectTimeoutMs,
    ...(connectivityProxy ? { connectivityProxy } : {}),
    ...(egressProxies ? { egressProxies } : {}),
  });
});
server.listen(spec.listen.port, spec.listen.host, () => log.info({ listen: spec.listen }, 'harness ready'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
