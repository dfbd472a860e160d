// The contract between the parts of the dataplane that leave through a proxy: the connectivity proxy
// (on-premise destinations, SAP BTP style) and corporate egress proxies (Internet destinations).
// Config parsing and token handling produce these; the HTTP and TCP paths consume them.

/** The SAP-style connectivity proxy in front of the Cloud Connector. */
export interface ConnectivityProxy {
  host: string;
  /** HTTP port: requests in absolute form with `Proxy-Authorization: Bearer <token>` (default 20003) */
  httpPort: number;
  /** SOCKS5 port: SAP's authentication method 0x80 with the same token (default 20004) */
  socks5Port: number;
  /**
   * The JWT for `Proxy-Authorization` / the SOCKS5 0x80 frame: a client-credentials token of the
   * connectivity service key for this tenant (cached, refreshed before expiry), or undefined in
   * trusted mode (no proxy authorization). Rejects when the token service fails.
   * `options.rejected`: the proxy refused this token (407): fetch a new one unless the cache already
   * holds a newer one (many requests refused with the same token cause one fetch).
   */
  token(tenant?: string, options?: { rejected?: string }): Promise<string | undefined>;
}

/** A corporate proxy for Internet destinations. Credentials never appear in logs or /config. */
export type EgressProxy =
  | { kind: 'http'; host: string; port: number; username?: string; password?: string }
  | { kind: 'socks5'; host: string; port: number; username?: string; password?: string };

export interface EgressProxies {
  /**
   * The proxy a connection to host:port should use, or undefined for a direct connection (none
   * configured, or NO_PROXY matches). `scheme` is the destination's: http, https or tcp.
   */
  forTarget(host: string, port: number, scheme: 'http' | 'https' | 'tcp'): EgressProxy | undefined;
}

/**
 * What the dataplane was configured with, created once in services.ts and handed to both the HTTP and
 * the TCP destination paths. Either may be absent: no connectivityProxy means OnPremise destinations
 * fail with a clear error; no egressProxies means every Internet target is connected to directly.
 */
export interface EgressContext {
  connectivityProxy?: ConnectivityProxy;
  egressProxies?: EgressProxies;
}
