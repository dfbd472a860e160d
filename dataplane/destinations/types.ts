// A destination as the dataplane uses it: SAP Destination service properties, parsed and validated.
// `properties` keeps the original property map (for /config, with secrets redacted).

export type DestinationType = 'HTTP' | 'TCP';
export type ProxyType = 'Internet' | 'OnPremise';

/** The authentication types the dataplane performs itself (more arrive with the Destination service). */
export const DATAPLANE_AUTHENTICATIONS = [
  'NoAuthentication',
  'BasicAuthentication',
  'OAuth2ClientCredentials',
  'OAuth2Password',
  'ClientCertificateAuthentication',
  /** OnPremise: the app's user JWT goes to the Cloud Connector as SAP-Connectivity-Authentication */
  'PrincipalPropagation',
  /** OnPremise: a client-credentials token goes as SAP-Connectivity-Technical-Authentication */
  'OAuth2TechnicalUserPropagation',
] as const;
export type Authentication = (typeof DATAPLANE_AUTHENTICATIONS)[number];

export interface KeyStore {
  /** KeyStoreLocation, e.g. client.p12 or client.pem; the format follows from its extension */
  location: string;
  password?: string;
  content: Buffer;
}

export interface TrustStore {
  location: string;
  password?: string;
  content: Buffer;
}

export interface Destination {
  name: string;
  type: DestinationType;
  proxyType: ProxyType;
  authentication: Authentication;
  /** HTTP destinations: the target URL (http or https; a schemeless URL means http) */
  url?: URL;
  /** TCP destinations: tcp://host:port */
  address?: { host: string; port: number };
  /** URL.headers.<name> and URL.queries.<name>, in the order given */
  headers: [string, string][];
  queries: [string, string][];
  user?: string;
  password?: string;
  tokenServiceURL?: string;
  tokenServiceUser?: string;
  tokenServicePassword?: string;
  clientId?: string;
  clientSecret?: string;
  scope?: string;
  keyStore?: KeyStore;
  trustStore?: TrustStore;
  trustAll: boolean;
  /** URL.connectionTimeoutInSeconds / URL.socketReadTimeoutInSeconds, in ms */
  connectTimeoutMs: number;
  readTimeoutMs: number;
  /** CloudConnectorLocationId: sent as SAP-Connectivity-SCC-Location_ID (OnPremise) */
  locationId?: string;
  /** every property as given (strings), for /config; secrets are redacted before showing */
  properties: Record<string, string>;
}
