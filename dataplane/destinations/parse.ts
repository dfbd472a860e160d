// Destination parsing and validation (pure apart from reading key / trust store files through
// ctx.readFile). Input: SAP Destination service properties, a Find API answer, or an SAP Cloud SDK
// destination object (see shapes.ts). Rules follow SAP's Destination service and transparent proxy; every
// problem names the destination and the property, and no message ever contains a property's value unless
// that value is harmless (Type, ProxyType, Authentication, host names).
import { BlockList, isIPv6 } from 'node:net';
import { DestinationError, DestinationParseError, quote } from './errors.js';
import { isRecord, normalizeInput } from './shapes.js';
import { loadKeyStore, loadTrustStore, type StoreContext } from './stores.js';
import {
  DATAPLANE_AUTHENTICATIONS,
  type Authentication,
  type Destination,
  type DestinationType,
  type ProxyType,
} from './types.js';

export { DestinationError, DestinationParseError } from './errors.js';
export { keyStoreFormat, type StoreFormat } from './stores.js';

export interface ParseContext extends StoreContext {
  /** where the destinations come from (file path, `env destinations`, ...); starts every message */
  source: string;
  /** 1-based position in the source's list (set by parseDestinations) */
  index?: number;
}

export const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
export const NAME_MAX_LENGTH = 200;

/**
 * SAP's transparent proxy: URL.connectionTimeoutInSeconds 1-300 s and URL.socketReadTimeoutInSeconds
 * 1-43200 s, both 30 s when not set (SAP BTP Connectivity docs, "Internet Connectivity" for the
 * transparent proxy for Kubernetes).
 */
export const TIMEOUTS = {
  connect: { property: 'URL.connectionTimeoutInSeconds', defaultSeconds: 30, maxSeconds: 300 },
  read: { property: 'URL.socketReadTimeoutInSeconds', defaultSeconds: 30, maxSeconds: 43_200 },
} as const;

/** SAP authentication types the dataplane does not perform (yet): a clear error instead of "unknown". */
export const SAP_AUTHENTICATIONS_NOT_SUPPORTED = [
  'OAuth2SAMLBearerAssertion',
  'OAuth2UserTokenExchange',
  'OAuth2JWTBearer',
  'OAuth2AuthorizationCode',
  'OAuth2RefreshToken',
  'OAuth2ClientCredentialsWithClientAssertion',
  'SAMLAssertion',
  'SAPAssertionSSO',
  'AppToAppSSO',
] as const;

/** Properties each authentication type needs (in this order in messages). */
export const REQUIRED_BY_AUTHENTICATION: Readonly<Record<Authentication, readonly string[]>> = {
  NoAuthentication: [],
  BasicAuthentication: ['User', 'Password'],
  OAuth2ClientCredentials: ['tokenServiceURL', 'clientId', 'clientSecret'],
  OAuth2Password: ['tokenServiceURL', 'clientId', 'clientSecret', 'User', 'Password'],
  ClientCertificateAuthentication: ['KeyStoreLocation'],
  PrincipalPropagation: [],
  OAuth2TechnicalUserPropagation: ['tokenServiceURL', 'clientId', 'clientSecret'],
};

/** Authentication types that only exist for on-premise systems (through the Cloud Connector). */
const ON_PREMISE_ONLY: readonly Authentication[] = ['PrincipalPropagation', 'OAuth2TechnicalUserPropagation'];

/** Headers the dataplane owns: a destination may not set them through URL.headers.<name>. */
const RESERVED_HEADERS = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
]);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addSubnet('0.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addAddress('::', 'ipv6');

/** localhost, *.localhost, 127.0.0.0/8, 0.0.0.0/8, ::1, :: and their IPv4-mapped forms. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIPv6(host)) return LOOPBACK.check(host, 'ipv6');
  if (/^[0-9.]+$/.test(host)) return LOOPBACK.check(host, 'ipv4');
  return false;
}

type Problem = [property: string, message: string];

/** SAP's rule: http(s), or no scheme at all (then http). Hosts are normalised by the WHATWG URL parser. */
function parseUrl(value: string, property: string, credentialsHint: string): URL | Problem {
  const text = value.trim();
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return [property, 'not a valid URL'];
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return [property, `scheme ${quote(url.protocol.slice(0, -1))} is not supported; use http or https`];
  if (url.username || url.password)
    return [property, `must not contain a user name or password; ${credentialsHint}`];
  if (!url.hostname) return [property, 'has no host'];
  url.hash = '';
  return url;
}

function parseAddress(value: string): { host: string; port: number } | Problem {
  const P = 'Address';
  const match = /^(?:([A-Za-z][A-Za-z0-9+.-]*):\/\/)?(\[[^\]]+\]|[^:/[\]]+):(\d+)$/.exec(value.trim());
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value.trim())?.[1];
  if (scheme !== undefined && scheme.toLowerCase() !== 'tcp')
    return [P, `scheme ${quote(scheme)} is not supported; expected tcp://host:port`];
  if (!match) return [P, 'expected tcp://host:port'];
  const port = Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return [P, 'port must be 1-65535'];
  let hostname: string;
  try {
    hostname = new URL(`http://${match[2]}`).hostname;
  } catch {
    return [P, 'expected tcp://host:port'];
  }
  if (isLoopbackHost(hostname)) return [P, `loopback targets are not allowed (${hostname})`];
  return { host: hostname.replace(/^\[(.*)\]$/, '$1'), port };
}

function parseSeconds(value: string | undefined, which: keyof typeof TIMEOUTS): number | Problem {
  const { property, defaultSeconds, maxSeconds } = TIMEOUTS[which];
  if (value === undefined) return defaultSeconds * 1000;
  const seconds = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!(seconds >= 1 && seconds <= maxSeconds))
    return [property, `expected a whole number of seconds from 1 to ${maxSeconds}`];
  return seconds * 1000;
}

function describe(value: unknown): string {
  if (value === null) return 'no value';
  if (Array.isArray(value)) return 'a list';
  return `a ${typeof value === 'object' ? 'mapping' : typeof value}`;
}

/**
 * Parses and validates one destination. Throws DestinationParseError with every problem found.
 * `raw` may be SAP properties, a Find API answer or an SAP Cloud SDK destination object.
 */
export function parseDestination(raw: unknown, ctx: ParseContext): Destination {
  const fail = (problems: Problem[], name?: string): never => {
    throw new DestinationParseError(
      problems.map(
        ([property, message]) => new DestinationError(ctx.source, message, name, property, ctx.index),
      ),
    );
  };
  if (!isRecord(raw))
    throw new DestinationParseError([
      new DestinationError(
        ctx.source,
        `expected a mapping of destination properties, got ${describe(raw)}`,
        undefined,
        undefined,
        ctx.index,
      ),
    ]);

  const input = normalizeInput(raw);
  const problems: Problem[] = [...input.problems];

  // Every property is text in SAP's model; YAML numbers and booleans (`TrustAll: true`) are accepted.
  const props: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.properties)) {
    if (typeof value === 'string') props[key] = value;
    else if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean')
      props[key] = String(value);
    else problems.push([key, `expected a text value, got ${describe(value)}`]);
  }
  const get = (key: string): string | undefined => (props[key] === '' ? undefined : props[key]);

  const name = get('Name');
  if (name === undefined) problems.push(['Name', 'required']);
  else if (!NAME_PATTERN.test(name))
    problems.push(['Name', 'must contain only letters, digits, "_" and "-"']);
  else if (name.length > NAME_MAX_LENGTH)
    problems.push(['Name', `must be at most ${NAME_MAX_LENGTH} characters (has ${name.length})`]);

  let type: DestinationType = 'HTTP';
  const rawType = get('Type');
  if (rawType === 'HTTP' || rawType === 'TCP') type = rawType;
  else if (rawType === 'RFC' || rawType === 'LDAP' || rawType === 'MAIL')
    problems.push(['Type', `not supported by the dataplane: ${rawType}; expected HTTP or TCP`]);
  else if (rawType !== undefined) problems.push(['Type', `expected HTTP or TCP, got ${quote(rawType)}`]);

  let proxyType: ProxyType = 'Internet';
  const rawProxyType = get('ProxyType');
  if (rawProxyType === 'Internet' || rawProxyType === 'OnPremise') proxyType = rawProxyType;
  else if (rawProxyType === 'PrivateLink')
    problems.push(['ProxyType', `not supported by the dataplane yet: ${rawProxyType}`]);
  else if (rawProxyType !== undefined)
    problems.push(['ProxyType', `expected Internet or OnPremise, got ${quote(rawProxyType)}`]);

  let url: URL | undefined;
  let address: { host: string; port: number } | undefined;
  if (type === 'HTTP') {
    const rawUrl = get('URL');
    if (rawUrl === undefined) problems.push(['URL', 'required for HTTP destinations']);
    else {
      const parsed = parseUrl(rawUrl, 'URL', 'use User and Password with BasicAuthentication');
      if (Array.isArray(parsed)) problems.push(parsed);
      else if (isLoopbackHost(parsed.hostname))
        problems.push(['URL', `loopback targets are not allowed (${parsed.hostname})`]);
      else url = parsed;
    }
  } else {
    const rawAddress = get('Address');
    if (rawAddress === undefined) problems.push(['Address', 'required for TCP destinations']);
    else {
      const parsed = parseAddress(rawAddress);
      if (Array.isArray(parsed)) problems.push(parsed);
      else address = parsed;
    }
  }

  let authentication: Authentication = 'NoAuthentication';
  const rawAuthentication = get('Authentication');
  if (rawAuthentication !== undefined) {
    if ((DATAPLANE_AUTHENTICATIONS as readonly string[]).includes(rawAuthentication))
      authentication = rawAuthentication as Authentication;
    else if ((SAP_AUTHENTICATIONS_NOT_SUPPORTED as readonly string[]).includes(rawAuthentication))
      problems.push(['Authentication', `not supported by the dataplane yet: ${rawAuthentication}`]);
    else
      problems.push([
        'Authentication',
        `unknown authentication type ${quote(rawAuthentication)}; expected one of ${DATAPLANE_AUTHENTICATIONS.join(', ')}`,
      ]);
  }
  if (type === 'TCP' && authentication !== 'NoAuthentication')
    problems.push(['Authentication', `TCP destinations take no authentication (got ${authentication})`]);
  if (ON_PREMISE_ONLY.includes(authentication) && proxyType !== 'OnPremise')
    problems.push(['Authentication', `${authentication} requires ProxyType OnPremise (got ${proxyType})`]);
  if (type === 'HTTP' && proxyType === 'OnPremise' && url?.protocol === 'https:')
    problems.push([
      'URL',
      'OnPremise URLs must be http:// (the connectivity proxy takes plain HTTP; the Cloud Connector originates TLS to the backend when its access control says HTTPS)',
    ]);
  for (const property of REQUIRED_BY_AUTHENTICATION[authentication])
    if (get(property) === undefined) problems.push([property, `required for ${authentication}`]);

  let tokenServiceURL: string | undefined;
  const rawTokenServiceUrl = get('tokenServiceURL');
  if (rawTokenServiceUrl !== undefined) {
    const parsed = parseUrl(
      rawTokenServiceUrl,
      'tokenServiceURL',
      'use clientId/clientSecret or tokenServiceUser/tokenServicePassword',
    );
    if (Array.isArray(parsed)) problems.push(parsed);
    else tokenServiceURL = parsed.href;
  }

  const headers: [string, string][] = [];
  const queries: [string, string][] = [];
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith('URL.headers.')) {
      const header = key.slice('URL.headers.'.length);
      if (!HEADER_NAME.test(header)) problems.push([key, 'not a valid HTTP header name']);
      else if (RESERVED_HEADERS.has(header.toLowerCase()))
        problems.push([key, 'this header is set by the dataplane and cannot be configured']);
      else if (/[\r\n\0]/.test(value)) problems.push([key, 'the value must not contain line breaks or NUL']);
      else headers.push([header, value]);
    } else if (key.startsWith('URL.queries.')) {
      const query = key.slice('URL.queries.'.length);
      if (query === '') problems.push([key, 'the query parameter name is empty']);
      else queries.push([query, value]);
    }
  }

  let trustAll = false;
  const rawTrustAll = get('TrustAll');
  if (rawTrustAll !== undefined) {
    if (/^true$/i.test(rawTrustAll)) trustAll = true;
    else if (!/^false$/i.test(rawTrustAll)) problems.push(['TrustAll', 'expected "true" or "false"']);
  }

  const connectTimeoutMs = parseSeconds(get(TIMEOUTS.connect.property), 'connect');
  if (Array.isArray(connectTimeoutMs)) problems.push(connectTimeoutMs);
  const readTimeoutMs = parseSeconds(get(TIMEOUTS.read.property), 'read');
  if (Array.isArray(readTimeoutMs)) problems.push(readTimeoutMs);

  const keyStoreLocation = get('KeyStoreLocation');
  const keyStore =
    keyStoreLocation === undefined
      ? undefined
      : loadKeyStore(keyStoreLocation, props['KeyStorePassword'], input.certificates, ctx);
  if (Array.isArray(keyStore)) problems.push(keyStore);
  const trustStoreLocation = get('TrustStoreLocation');
  const trustStore =
    trustStoreLocation === undefined
      ? undefined
      : loadTrustStore(trustStoreLocation, props['TrustStorePassword'], input.certificates, ctx);
  if (Array.isArray(trustStore)) problems.push(trustStore);

  if (
    problems.length > 0 ||
    name === undefined ||
    Array.isArray(connectTimeoutMs) ||
    Array.isArray(readTimeoutMs) ||
    Array.isArray(keyStore) ||
    Array.isArray(trustStore)
  )
    return fail(problems, name);

  const optional = {
    user: get('User'),
    password: props['Password'],
    tokenServiceURL,
    tokenServiceUser: get('tokenServiceUser'),
    tokenServicePassword: props['tokenServicePassword'],
    clientId: get('clientId'),
    clientSecret: props['clientSecret'],
    scope: get('scope'),
    keyStore,
    trustStore,
    locationId: get('CloudConnectorLocationId'),
    url,
    address,
  };
  const destination: Destination = {
    name,
    type,
    proxyType,
    authentication,
    headers,
    queries,
    trustAll,
    connectTimeoutMs,
    readTimeoutMs,
    properties: props,
  };
  for (const [key, value] of Object.entries(optional))
    if (value !== undefined) Object.assign(destination, { [key]: value });
  return destination;
}

/** A list of destinations, or `{ destinations: [...] }`; undefined for anything else. */
export function destinationList(data: unknown): unknown[] | undefined {
  if (Array.isArray(data)) return data;
  if (isRecord(data) && Array.isArray(data['destinations'])) return data['destinations'] as unknown[];
  return undefined;
}

export function notAList(data: unknown, source: string): DestinationError {
  return new DestinationError(
    source,
    `expected a list of destinations (or a mapping with a "destinations" list), got ${describe(data)}`,
  );
}

export interface ParseResult {
  destinations: Destination[];
  errors: DestinationError[];
}

/**
 * Parses a list of destinations (or `{ destinations: [...] }`). A bad destination is reported and
 * skipped; the others load. A second destination with the same Name, or one differing only in case
 * (DNS names are case-insensitive), is an error for the later one.
 */
export function parseDestinations(list: unknown, ctx: ParseContext): ParseResult {
  const items = destinationList(list);
  if (!items) return { destinations: [], errors: [notAList(list, ctx.source)] };
  const destinations: Destination[] = [];
  const errors: DestinationError[] = [];
  const seen = new Map<string, string>();
  items.forEach((item, i) => {
    const index = i + 1;
    let destination: Destination;
    try {
      destination = parseDestination(item, { ...ctx, index });
    } catch (error) {
      if (!(error instanceof DestinationParseError)) throw error;
      errors.push(...error.errors);
      return;
    }
    const earlier = seen.get(destination.name.toLowerCase());
    if (earlier === destination.name)
      errors.push(
        new DestinationError(
          ctx.source,
          'defined more than once; the first one is used',
          destination.name,
          'Name',
          index,
        ),
      );
    else if (earlier !== undefined)
      errors.push(
        new DestinationError(
          ctx.source,
          `differs only in case from ${quote(earlier)}; names must be unique ignoring case because DNS names are case-insensitive`,
          destination.name,
          'Name',
          index,
        ),
      );
    else {
      seen.set(destination.name.toLowerCase(), destination.name);
      destinations.push(destination);
    }
  });
  return { destinations, errors };
}
