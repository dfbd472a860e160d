// The connectivity proxy stand-in's SOCKS5 port: SAP's method 0x80 (the JWT and the base64 location
// id in the sub-negotiation), CONNECT by domain name or IPv4, SAP's reply codes (README.md), then
// the bytes piped between the client and the internal host of the Cloud Connector's TCP mapping.
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { resolveLocation, resolveSystem } from './connectivity-config.js';
import { BACKEND_CONNECT_TIMEOUT_MS, bump, type ProxyContext } from './connectivity-context.js';
import {
  ATYP_IPV6,
  buildReply,
  CMD_CONNECT,
  JWT_AUTH_VERSION,
  METHOD_JWT,
  METHOD_NO_AUTH,
  METHOD_NONE_ACCEPTABLE,
  parseConnectRequest,
  parseGreeting,
  parseJwtAuthFrame,
  replyName,
  SOCKS_REPLY,
  SOCKS_VERSION,
} from './connectivity-socks5.js';
import type { JwtClaims } from './jwt.js';

/** A session that sends nothing for this long (before piping starts) is dropped. */
const HANDSHAKE_IDLE_MS = 30_000;

export interface SocksPort {
  server: net.Server;
  /** ends every open session (for stop()) */
  destroyAll(): void;
}

export function createSocksPort(ctx: ProxyContext): SocksPort {
  const { stats } = ctx;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    stats.socksSessions++;
    socksSession(socket);
  });

  function socksSession(socket: net.Socket): void {
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'auth' | 'request' | 'connecting' | 'piping' = 'greeting';
    let claims: JwtClaims | undefined;
    let authProblem: string | undefined;
    let locationId = '';
    let clientEnded = false;
    socket.on('error', () => socket.destroy());
    socket.setTimeout(HANDSHAKE_IDLE_MS, () => socket.destroy());
    const finish = (code: number): void => {
      bump(stats.socksReplies, replyName(code));
      socket.end(buildReply(code));
    };
    const step = async (): Promise<void> => {
      if (stage === 'greeting') {
        const g = parseGreeting(buf);
        if (g.kind === 'more') return;
        if (g.kind === 'error') return void socket.destroy();
        buf = buf.subarray(g.length);
        if (g.methods.includes(METHOD_JWT)) {
          socket.write(Buffer.from([SOCKS_VERSION, METHOD_JWT]));
          stage = 'auth';
        } else if (ctx.options.trusted && g.methods.includes(METHOD_NO_AUTH)) {
          // trusted mode: no proxy authorization, the default location
          socket.write(Buffer.from([SOCKS_VERSION, METHOD_NO_AUTH]));
          claims = {};
          stage = 'request';
        } else return void socket.end(Buffer.from([SOCKS_VERSION, METHOD_NONE_ACCEPTABLE]));
      }
      if (stage === 'auth') {
        const a = parseJwtAuthFrame(buf);
        if (a.kind === 'more') return;
        if (a.kind === 'error') return void socket.destroy();
        buf = buf.subarray(a.length);
        stage = 'connecting'; // no parsing while the token is checked
        const result = await ctx.authenticate(a.jwt);
        if (typeof result === 'string') {
          if ((ctx.options.socksAuthFailure ?? 'subnegotiation') === 'subnegotiation')
            return void socket.end(Buffer.from([JWT_AUTH_VERSION, 0x01]));
          authProblem = result;
        } else claims = result;
        locationId = a.locationId;
        socket.write(Buffer.from([JWT_AUTH_VERSION, 0x00]));
        stage = 'request';
      }
      if (stage === 'request') {
        const r = parseConnectRequest(buf);
        if (r.kind === 'more') return;
        if (r.kind === 'error') {
          // An address type whose length is unknown: SAP's reply for unsupported address types.
          return /address type/.test(r.message)
            ? finish(SOCKS_REPLY.ADDRESS_UNSUPPORTED)
            : void socket.destroy();
        }
        buf = buf.subarray(r.length);
        stage = 'connecting';
        if (r.command !== CMD_CONNECT) return finish(SOCKS_REPLY.COMMAND_UNSUPPORTED);
        if (r.addressType === ATYP_IPV6) return finish(SOCKS_REPLY.ADDRESS_UNSUPPORTED);
        if (authProblem !== undefined || !claims) return finish(SOCKS_REPLY.CONNECTION_REFUSED);
        const found = resolveLocation(ctx.locations, locationId);
        if (!found.ok) return finish(SOCKS_REPLY.NETWORK_UNREACHABLE);
        const system = resolveSystem(found.location, r.host, r.port, 'tcp');
        if (!system.ok) return finish(SOCKS_REPLY.FORBIDDEN);
        const upstream = net.connect({
          host: system.system.internalHost,
          port: system.system.internalPort,
          allowHalfOpen: true,
        });
        upstream.setTimeout(BACKEND_CONNECT_TIMEOUT_MS, () => upstream.destroy(new Error('timeout')));
        upstream.once('error', () => {
          if (stage === 'connecting') finish(SOCKS_REPLY.HOST_UNREACHABLE);
          else socket.destroy();
        });
        upstream.once('connect', () => {
          upstream.setTimeout(0);
          socket.setTimeout(0);
          stage = 'piping';
          bump(stats.socksReplies, 'SUCCESS');
          bump(stats.byLocation, locationId);
          const local = upstream.address() as AddressInfo;
          socket.write(buildReply(SOCKS_REPLY.SUCCESS, { address: local.address, port: local.port }));
          socket.off('data', onData); // from here on, pipe() moves the bytes
          if (buf.length > 0) upstream.write(buf);
          buf = Buffer.alloc(0);
          if (clientEnded) upstream.end(); // the client half-closed before the pipe existed
          // half-closes travel through (pipe ends the other side); errors and a vanished client end both
          socket.pipe(upstream);
          upstream.pipe(socket);
          upstream.on('error', () => socket.destroy());
          socket.on('close', () => upstream.destroy());
        });
      }
    };
    const onData = (chunk: Buffer): void => {
      if (stage === 'piping') return;
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'connecting') return;
      void step().catch(() => socket.destroy());
    };
    socket.on('data', onData);
    socket.on('end', () => {
      clientEnded = true;
      // mid-handshake with nothing more to come: give up (while connecting, the outcome still answers)
      if (stage === 'greeting' || stage === 'auth' || stage === 'request') socket.destroy();
    });
  }

  return {
    server,
    destroyAll: () => {
      for (const s of sockets) s.destroy();
    },
  };
}
