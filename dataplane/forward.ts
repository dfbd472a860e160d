// Connects to a connection's original destination and copies bytes both ways until both sides are done.
import net from 'node:net';
import type { Logger } from './logger.js';
import { relay, relayAvailable, type RelayResult } from './splice-relay.js';

export interface Target {
  /** an IP address, or a host name (TCP destinations) */
  address: string;
  port: number;
  /** omitted: whatever the name resolves to */
  family?: 4 | 6;
}

export interface ForwardOptions {
  connectTimeoutMs: number;
  /** an upstream already connected (e.g. through a proxy) to pipe to instead of connecting to `target` */
  upstream?: net.Socket;
}

function reasonOf(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(error);
}

/**
 * The client socket must come from a server with allowHalfOpen (and pauseOnConnect) so that a FIN from
 * either side is passed on as a FIN, not as a full close. Any error on either side destroys both.
 * Logs "upstream connect failed" or nothing while running, and one "connection closed" line at the end.
 * Bytes are moved by the native splice relay when it is available (DETOUR_SPLICE=0 turns it off).
 */
export function forward(client: net.Socket, target: Target, options: ForwardOptions, log: Logger): void {
  const started = Date.now();
  // noDelay on both sides: the proxy passes on whatever arrives at once. With Nagle on, a small reply
  // written while an earlier segment is unacknowledged waits for the peer's delayed ACK (up to 40 ms).
  // Throughput does not suffer: pipe() writes what one read returned (up to 64 KiB) in one call.
  const upstream =
    options.upstream ??
    net.connect({
      host: target.address,
      port: target.port,
      ...(target.family ? { family: target.family } : {}),
      allowHalfOpen: true,
      noDelay: true,
    });
  let connected = false;
  let error: string | undefined;
  let relayed: RelayResult | undefined;

  const destroyBoth = (reason: string) => {
    error ??= reason;
    upstream.destroy();
    client.destroy();
  };

  if (!options.upstream)
    upstream.setTimeout(options.connectTimeoutMs, () => {
      upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    });
  const onConnect = () => {
    connected = true;
    upstream.setTimeout(0);
    // A tunnel's socket (through a proxy) was opened elsewhere, without the connect option.
    if (options.upstream) upstream.setNoDelay(true);
    client.setNoDelay(true);
    // A tunnel whose target spoke first (SMTP, SSH, MySQL) may have its greeting in Node already: pass
    // it on, then hand over to the relay once it left Node (the relay wants nothing buffered in Node).
    const early = relayAvailable() && upstream.readableLength > 0 ? (upstream.read() as Buffer | null) : null;
    if (early) client.write(early, copy);
    else copy();
  };
  // The splice(2) relay (splice-relay.ts) when available, else Node streams.
  const copy = () => {
    if (client.destroyed || upstream.destroyed) return;
    if (relay(client, upstream, onRelayDone)) return;
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const onRelayDone = (result: RelayResult) => {
    relayed = result;
    if (result.error) error ??= `${result.side ?? 'relay'}: ${result.error}`;
    // After a failure the relay set SO_LINGER 0 on both sockets: closing them resets both peers.
    upstream.destroy();
    client.destroy();
  };
  if (options.upstream) onConnect();
  else upstream.once('connect', onConnect);
  upstream.on('error', (err) => {
    if (connected) return destroyBoth(`upstream: ${reasonOf(err)}`);
    error ??= reasonOf(err);
    log.warn({ reason: error, timeoutMs: options.connectTimeoutMs }, 'upstream connect failed');
    // A reset is the closest the application gets to the refusal it would have seen without us.
    if (!client.destroyed) client.resetAndDestroy();
  });
  client.on('error', (err) => destroyBoth(`client: ${reasonOf(err)}`));

  let open = 2;
  const onClose = () => {
    if (--open > 0) return;
    log.info(
      {
        bytesIn: client.bytesRead + (relayed?.bytesClientToUpstream ?? 0),
        bytesOut: client.bytesWritten + (relayed?.bytesUpstreamToClient ?? 0),
        durationMs: Date.now() - started,
        upstreamConnected: connected,
        ...(relayed ? { spliced: true } : {}),
        ...(error ? { error } : {}),
      },
      'connection closed',
    );
  };
  upstream.once('close', onClose);
  client.once('close', onClose);
}
