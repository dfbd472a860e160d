// The three input shapes a destination arrives in, reduced to one: SAP's flat property map plus the
// certificates that came with it.
//   SAP properties        { Name, Type, URL, Authentication, URL.headers.x, ... }     (files, Destination CRs)
//   Find API answer       { destinationConfiguration: {...}, certificates: [{ Name, Content, Type }] }
//   SAP Cloud SDK object  { name, url, type, authentication, username, password, headers: {...}, ... }

export interface Certificate {
  name: string;
  content: Buffer;
  type?: string;
}

export interface NormalizedInput {
  /** SAP property names → values as given (validated later) */
  properties: Record<string, unknown>;
  certificates: Certificate[];
  /** shape-level problems: [property, message] */
  problems: [string, string][];
}

/** SAP Cloud SDK `Destination` field → SAP Destination service property */
export const SDK_PROPERTY: Readonly<Record<string, string>> = {
  name: 'Name',
  type: 'Type',
  url: 'URL',
  address: 'Address',
  description: 'Description',
  authentication: 'Authentication',
  proxyType: 'ProxyType',
  username: 'User',
  password: 'Password',
  tokenServiceUrl: 'tokenServiceURL',
  tokenServiceUser: 'tokenServiceUser',
  tokenServicePassword: 'tokenServicePassword',
  clientId: 'clientId',
  clientSecret: 'clientSecret',
  scope: 'scope',
  keyStoreName: 'KeyStoreLocation',
  keyStorePassword: 'KeyStorePassword',
  isTrustingAllCertificates: 'TrustAll',
  cloudConnectorLocationId: 'CloudConnectorLocationId',
  sapClient: 'sap-client',
  systemUser: 'SystemUser',
};

/** SDK fields that describe results of an SDK lookup, not configuration: ignored. */
const SDK_IGNORED = new Set(['originalProperties', 'authTokens', 'proxyConfiguration']);

/** Keys that mark the SAP property shape (SAP names are case-sensitive: `name` is not `Name`). */
const SAP_MARKERS = ['Name', 'Type', 'URL', 'Address', 'Authentication', 'ProxyType'];

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function normalizeInput(raw: Record<string, unknown>): NormalizedInput {
  if ('destinationConfiguration' in raw) return fromFindApi(raw);
  const sap = SAP_MARKERS.some((key) => key in raw);
  if (!sap && ('name' in raw || 'url' in raw)) return fromSdk(raw);
  const { certificates: rawCertificates, ...properties } = raw;
  const problems: [string, string][] = [];
  const certificates = parseCertificates(rawCertificates, problems);
  return { properties, certificates, problems };
}

function fromFindApi(raw: Record<string, unknown>): NormalizedInput {
  const problems: [string, string][] = [];
  const config = raw['destinationConfiguration'];
  if (!isRecord(config)) {
    problems.push(['destinationConfiguration', 'expected a mapping of destination properties']);
    return { properties: {}, certificates: [], problems };
  }
  // authTokens (tokens the service fetched) and owner are ignored: the dataplane authenticates itself.
  return {
    properties: { ...config },
    certificates: parseCertificates(raw['certificates'], problems),
    problems,
  };
}

function fromSdk(raw: Record<string, unknown>): NormalizedInput {
  const properties: Record<string, unknown> = {};
  const problems: [string, string][] = [];
  const certificates = parseCertificates(raw['certificates'], problems);
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'certificates' || SDK_IGNORED.has(key)) continue;
    if (key === 'headers' || key === 'queryParameters') {
      const prefix = key === 'headers' ? 'URL.headers.' : 'URL.queries.';
      if (value === undefined || value === null) continue;
      if (!isRecord(value)) {
        problems.push([key, 'expected a mapping of names to values']);
        continue;
      }
      for (const [name, v] of Object.entries(value)) properties[prefix + name] = v;
      continue;
    }
    if (key === 'trustStoreCertificate') {
      if (value === undefined || value === null) continue;
      const [certificate] = parseCertificates([value], problems, key);
      if (certificate) {
        properties['TrustStoreLocation'] = certificate.name;
        certificates.push(certificate);
      }
      continue;
    }
    properties[SDK_PROPERTY[key] ?? key] = value;
  }
  // The SDK's rule: no authentication given, but a user name and password → BasicAuthentication.
  if (properties['Authentication'] === undefined)
    properties['Authentication'] =
      properties['User'] && properties['Password'] ? 'BasicAuthentication' : 'NoAuthentication';
  return { properties, certificates, problems };
}

const BASE64 = /^[A-Za-z0-9+/\r\n]+={0,2}\s*$/;

/** `certificates` of the Find API ({ Name, Content (base64), Type }) or the SDK ({ name, content, type }). */
function parseCertificates(
  value: unknown,
  problems: [string, string][],
  label = 'certificates',
): Certificate[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.push([label, 'expected a list of { Name, Content, Type }']);
    return [];
  }
  const certificates: Certificate[] = [];
  value.forEach((entry: unknown, i) => {
    const where = label === 'certificates' ? `certificates[${i}]` : label;
    if (!isRecord(entry)) {
      problems.push([where, 'expected a mapping with Name, Content and Type']);
      return;
    }
    const name = entry['Name'] ?? entry['name'];
    const content = entry['Content'] ?? entry['content'];
    const type = entry['Type'] ?? entry['type'];
    if (typeof name !== 'string' || name === '') {
      problems.push([`${where}.Name`, 'required']);
      return;
    }
    if (typeof content !== 'string' || !BASE64.test(content)) {
      problems.push([`${where}.Content`, 'expected base64 content']);
      return;
    }
    certificates.push({
      name,
      content: Buffer.from(content, 'base64'),
      ...(typeof type === 'string' ? { type } : {}),
    });
  });
  return certificates;
}
