// The admin server on 127.0.0.1:9901: /ready, /metrics (Prometheus), /config (destinations and
// their VIPs, secrets redacted). Read-only; it never changes the dataplane.
import http from 'node:http';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface AdminSources {
  /** undefined when ready; else what is still missing (e.g. "dns not listening") */
  notReady(): string[];
  /** the /config document; must already be redacted */
  config(): unknown;
  metrics: Metrics;
}

export interface AdminServer {
  address: string;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

export async function startAdminServer(
  options: { address: string; port: number },
  sources: AdminSources,
  log: Logger,
): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'only GET\n');
      return;
    }
    if (path === '/ready') {
      const missing = sources.notReady();
      send(
        res,
        missing.length ? 503 : 200,
        'application/json',
        JSON.stringify({ ready: !missing.length, missing }) + '\n',
      );
    } else if (path === '/metrics') {
      sources.metrics.registry
        .metrics()
        .then((text) => send(res, 200, sources.metrics.registry.contentType, text))
        .catch((error: unknown) =>
          send(res, 500, 'text/plain', `metrics failed: ${(error as Error).message}\n`),
        );
    } else if (path === '/config') {
      send(res, 200, 'application/json', JSON.stringify(sources.config(), null, 2) + '\n');
    } else {
      send(res, 404, 'text/plain', 'not found: try /ready, /metrics or /config\n');
    }
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => resolve());
  }).catch((error: NodeJS.ErrnoException) => {
    throw Object.assign(
      new Error(`cannot listen on admin ${options.address}:${options.port}: ${error.code ?? error.message}`),
      {
        exitCode: 1,
      },
    );
  });
  log.debug({ address: options.address, port: options.port }, 'admin listening');
  const bound = server.address() as { address: string; port: number };
  return {
    address: `${bound.address}:${bound.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
