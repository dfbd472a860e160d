// The request to the connectivity proxy for an OnPremise HTTP destination, as a pure function of the
// rewritten upstream request (see ../http/rewrite.ts), the app's headers and the proxy token.
//
// - Absolute form: `GET http://virtualhost:port/path HTTP/1.1`; the proxy routes by the URL's host.
// - `Proxy-Authorization: Bearer <token>` (none in trusted mode). The proxy consumes it (hop-by-hop);
//   an app's own Proxy-Authorization never passes (../http/rewrite.ts drops it).
// - `SAP-Connectivity-SCC-Location_ID`: the app's own header wins, else the destination's
//   CloudConnectorLocationId.
// - PrincipalPropagation: the app's `Authorization: Bearer <user JWT>` becomes
//   `SAP-Connectivity-Authentication: Bearer <user JWT>`; no `Authorization` is forwarded.
// - OAuth2TechnicalUserPropagation: `SAP-Connectivity-Technical-Authentication: Bearer <token>` comes
//   from the authenticator (as its auth header); no `Authorization` is forwarded either.
// - The dataplane owns both `SAP-Connectivity-*Authentication` headers: an app's own are dropped, so an
//   app cannot pose as another user on a destination that does not propagate one.
import type { HeaderList, UpstreamRequest } from '../http/rewrite.js';

export const SAP_HEADERS = {
  location: 'SAP-Connectivity-SCC-Location_ID',
  authentication: 'SAP-Connectivity-Authentication',
  technicalAuthentication: 'SAP-Connectivity-Technical-Authentication',
} as const;

/** The destination fields this needs (a Destination fits). */
export interface OnPremiseDestination {
  name: string;
  authentication: string;
  locationId?: string;
}

export interface OnPremiseRequest {
  /** absolute form: `http://virtualhost:port/path?query` */
  path: string;
  headers: HeaderList;
  /**
   * Principal / technical user propagation: whose request this is. Requests with different identities
   * never share an upstream connection. Undefined: the destination's own pool.
   */
  identity?: string;
}

export type OnPremiseResult = OnPremiseRequest | { missingUserToken: string };

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

/** The JWT in the app's `Authorization: Bearer <jwt>`, if it sent exactly one. */
export function userJwt(appHeaders: HeaderList): string | undefined {
  const values = appHeaders.filter(([n]) => n.toLowerCase() === 'authorization').map(([, v]) => v);
  if (values.length !== 1) return undefined;
  return BEARER.exec(values[0]!)?.[1];
}

export function onPremiseRequest(
  destination: OnPremiseDestination,
  upstream: UpstreamRequest,
  appHeaders: HeaderList,
  proxyToken: string | undefined,
): OnPremiseResult {
  const principal = destination.authentication === 'PrincipalPropagation';
  const technical = destination.authentication === 'OAuth2TechnicalUserPropagation';
  let jwt: string | undefined;
  if (principal) {
    jwt = userJwt(appHeaders);
    if (jwt === undefined) return { missingUserToken: missingTokenMessage(destination.name) };
  }
  const authLower = SAP_HEADERS.authentication.toLowerCase();
  const techLower = SAP_HEADERS.technicalAuthentication.toLowerCase();
  const headers: HeaderList = [];
  let technicalValue: string | undefined;
  let hasLocation = false;
  for (const [name, value] of upstream.headers) {
    const lower = name.toLowerCase();
    if (lower === authLower) continue;
    if (lower === techLower) {
      // with technical user propagation the one left after the rewrite is the authenticator's
      if (!technical) continue;
      technicalValue = value;
    }
    // SAP: with principal or technical user propagation "you must omit the Authorization header"
    if ((principal || technical) && lower === 'authorization') continue;
    if (lower === SAP_HEADERS.location.toLowerCase()) hasLocation = true;
    headers.push([name, value]);
  }
  if (!hasLocation && destination.locationId) headers.push([SAP_HEADERS.location, destination.locationId]);
  if (jwt !== undefined) headers.push([SAP_HEADERS.authentication, `Bearer ${jwt}`]);
  if (proxyToken !== undefined) headers.push(['Proxy-Authorization', `Bearer ${proxyToken}`]);
  const identity =
    jwt !== undefined
      ? `user ${jwt}`
      : technicalValue !== undefined
        ? `technical ${technicalValue}`
        : undefined;
  return {
    path: upstream.origin + upstream.path,
    headers,
    ...(identity !== undefined ? { identity } : {}),
  };
}

/** PrincipalPropagation without a usable user JWT: the 400 message; else undefined. */
export function principalPropagationProblem(
  destination: OnPremiseDestination,
  appHeaders: HeaderList,
): string | undefined {
  if (destination.authentication !== 'PrincipalPropagation' || userJwt(appHeaders) !== undefined)
    return undefined;
  return missingTokenMessage(destination.name);
}

function missingTokenMessage(name: string): string {
  return (
    `Destination '${name}' uses PrincipalPropagation: send the user's JWT as ` +
    "'Authorization: Bearer <token>' (exactly one Authorization header)."
  );
}
