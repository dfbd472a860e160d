// `detour dataplane`: drop privileges, open the listeners, forward every redirected connection.
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import type { DataplaneConfig } from './config.js';
import { type ConnectionContext, type Direction, handleConnection } from './connection.js';
import { isMissingIpv6, listenerName, listenerSpecs, openListener } from './listeners.js';
import { createLogger, type Logger } from './logger.js';
import { loadAddon } from './original-destination.js';
import { startServices } from './services.js';
import { dropPrivileges, resolveUser } from './user.js';

export interface Dataplane {
  /** e.g. ["outbound 127.0.0.1:15001", "outbound [::1]:15001", ...] */
  listeners: string[];
  close(): Promise<void>;
}

class ListenError extends Error {
  readonly exitCode = 1;
}

export async function startDataplane(config: DataplaneConfig, log: Logger): Promise<Dataplane> {
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  const listeners: string[] = [];
  const services = await startServices(config, log, () => listeners);
  const ctx: ConnectionContext = {
    log,
    passthrough: config.passthrough,
    connectTimeoutMs: config.connectTimeoutMs,
    route: services.route,
    count: (direction, route) => services.metrics.connection(direction, route),
  };
  let nextId = 0;

  const accept = (direction: Direction) => (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    handleConnection(ctx, direction, socket, ++nextId);
  };
  const close = async () => {
    const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const socket of sockets) socket.destroy();
    await Promise.all(closed);
    await services.close();
  };

  try {
    for (const spec of listenerSpecs(config)) {
      const server = await openListener(spec, accept(spec.direction)).catch((error: unknown) => {
        if (isMissingIpv6(spec, error)) return undefined;
        throw new ListenError(
          `cannot listen on ${listenerName(spec)}: ${(error as NodeJS.ErrnoException).code ?? error}`,
        );
      });
      if (!server) {
        log.info({ listener: listenerName(spec) }, 'no IPv6 on this host; skipping listener');
        continue;
      }
      server.on('error', (err) => log.error({ err, listener: listenerName(spec) }, 'listener error'));
      servers.push(server);
      listeners.push(listenerName(spec));
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { listeners, close };
}

function readPasswd(): string {
  try {
    return readFileSync('/etc/passwd', 'utf8');
  } catch {
    return '';
  }
}

/** The CLI's entry: returns once the dataplane is ready; SIGTERM/SIGINT close it and exit 0. */
export async function runDataplane(config: DataplaneConfig): Promise<void> {
  const log = createLogger(config.logLevel);
  const user = config.user === undefined ? undefined : resolveUser(config.user, readPasswd());
  loadAddon(); // fail fast, and while we may still read files only root can
  if (user) {
    dropPrivileges(user);
    log.info({ uid: user.uid, gid: user.gid, user: user.name }, 'running as user');
  }
  const dataplane = await startDataplane(config, log);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'shutting down');
      void dataplane.close().finally(() => log.flush(() => process.exit(0)));
    });
  }
  log.info(
    {
      listeners: dataplane.listeners,
      passthrough: config.passthrough,
      admin: `${config.admin.address}:${config.admin.port}`,
    },
    'ready',
  );
}
