// Hands a pair of connected TCP sockets to the native splice(2) relay (build/splice_relay.node), which
// copies bytes both ways on its own thread without passing them through JavaScript.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { findAddon, socketFd } from './original-destination.js';

export interface RelayResult {
  /** bytes read from the client (and passed on, unless `error`) */
  bytesClientToUpstream: number;
  /** bytes written to the client */
  bytesUpstreamToClient: number;
  /** errno code (ECONNRESET, EPIPE, ...) when a socket failed; both sockets are then reset on close */
  error?: string;
  /** which socket failed */
  side?: 'client' | 'upstream';
  /** ended by a socket being destroyed from JavaScript (e.g. the dataplane shutting down) */
  cancelled: boolean;
}

interface NativeReport {
  id: number;
  bytesClientToUpstream: number;
  bytesUpstreamToClient: number;
  error?: string;
  side?: 'client' | 'upstream';
}

interface RelayAddon {
  start(onDone: (report: NativeReport) => void): void;
  add(clientFd: number, upstreamFd: number): number;
  cancel(id: number): void;
  cancelAll(): void;
  active(): number;
}

/** Node's TCPWrap, as far as the handover needs it (not public API: see handOverable()). */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
  readStart?: () => number;
}

type Internals = Socket & {
  _handle?: StreamHandle | null;
  _readableState?: { ended?: boolean };
  _destroy: (error: Error | null, callback: (error?: Error | null) => void) => void;
  encrypted?: boolean;
};

const pending = new Map<number, (result: RelayResult) => void>();
let addon: RelayAddon | null | undefined;
let loadError: string | undefined;

function dispatch(report: NativeReport): void {
  const onDone = pending.get(report.id);
  if (!onDone) return;
  pending.delete(report.id);
  const cancelled = report.error === 'ECANCELED' && report.side === undefined;
  onDone({
    bytesClientToUpstream: report.bytesClientToUpstream,
    bytesUpstreamToClient: report.bytesUpstreamToClient,
    ...(report.error && !cancelled ? { error: report.error } : {}),
    ...(report.side ? { side: report.side } : {}),
    cancelled,
  });
}

function loadRelay(): RelayAddon | null {
  if (addon !== undefined) return addon;
  const path =
    process.platform === 'linux'
      ? findAddon(dirname(fileURLToPath(import.meta.url)), 'splice_relay.node')
      : undefined;
  addon = null;
  if (!path) {
    loadError = 'build/splice_relay.node not found (run `npm run build:native`) or not Linux';
    return addon;
  }
  try {
    const loaded = createRequire(import.meta.url)(path) as RelayAddon;
    loaded.start((report) => {
      // An exception thrown here would surface inside the addon's callback; keep it on the event loop.
      try {
        dispatch(report);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    });
    addon = loaded;
  } catch (error) {
    // A broken build must not take the TCP path down: Node's streams still copy.
    loadError = `${path}: ${(error as Error).message}`;
  }
  return addon;
}

/** Why the relay is not available (undefined while it is, or before the first use). */
export function relayLoadError(): string | undefined {
  return loadError;
}

/** The relay is used unless DETOUR_SPLICE=0, on Linux, when build/splice_relay.node exists. */
export function relayAvailable(): boolean {
  if (process.env.DETOUR_SPLICE === '0') return false;
  return loadRelay() !== null;
}

/**
 * Stops Node reading from the socket and says whether nothing is buffered in Node, i.e. whether the
 * kernel's socket holds every byte not yet passed on. pause() alone does not stop libuv from reading
 * (a paused stream keeps reading until its buffer is full), hence readStop() on the handle, as Node's
 * own stream code does when push() returns false. A handle stopped here goes into `stopped`.
 */
function handOverable(socket: Internals, stopped: Internals[]): boolean {
  const handle = socket._handle;
  if (!handle || socket.destroyed || socket.connecting || socket.encrypted) return false;
  if (socketFd(socket) === undefined) return false;
  socket.pause();
  if (handle.reading) {
    if (typeof handle.readStop !== 'function' || handle.readStop() !== 0) return false;
    handle.reading = false;
    stopped.push(socket);
  }
  return (
    socket.readableLength === 0 &&
    socket.writableLength === 0 &&
    socket._readableState?.ended !== true &&
    socket.writable
  );
}

/**
 * Undoes handOverable()'s readStop(): the stream may be waiting for the read it started (its own state
 * says "reading"), which would never come, and pipe() would stall.
 */
function restartReading(stopped: Internals[]): void {
  for (const socket of stopped) {
    const handle = socket._handle;
    if (!handle || socket.destroyed || typeof handle.readStart !== 'function') continue;
    handle.reading = true;
    const err = handle.readStart();
    if (err !== 0) socket.destroy(Object.assign(new Error('readStart failed'), { code: 'EIO' }));
  }
}

/**
 * Hands both sockets to the relay thread. Returns false (nothing handed over, reading paused: the caller
 * pipes them as before, which resumes reading) when the relay is unavailable or a socket is not in a state
 * where the kernel alone holds its bytes. Otherwise `onDone` runs once, when both directions reached EOF
 * (FINs passed on as they came) or a socket failed; the caller must then destroy both sockets. Destroying
 * one of them earlier is safe: it first takes the pair back from the relay thread (synchronously).
 */
export function relay(client: Socket, upstream: Socket, onDone: (result: RelayResult) => void): boolean {
  if (!relayAvailable()) return false;
  const native = addon!;
  const sockets = [client, upstream] as Internals[];
  const stopped: Internals[] = [];
  if (!sockets.every((socket) => handOverable(socket, stopped))) {
    restartReading(stopped);
    return false;
  }
  let id: number;
  try {
    id = native.add(socketFd(client)!, socketFd(upstream)!);
  } catch {
    restartReading(stopped); // no pipes (EMFILE, ...): the pipe() path still works
    return false;
  }
  pending.set(id, onDone);
  for (const socket of sockets) {
    const destroy = socket._destroy;
    socket._destroy = function (this: Internals, error, callback) {
      if (pending.has(id)) native.cancel(id);
      destroy.call(this, error, callback);
    };
  }
  return true;
}

/** Pairs handed over and not yet reported (tests, diagnostics). */
export function relayActive(): number {
  return pending.size;
}

/** Ends every relayed pair now (each onDone runs with `cancelled: true`). */
export function cancelAllRelays(): void {
  if (addon && pending.size > 0) addon.cancelAll();
}
