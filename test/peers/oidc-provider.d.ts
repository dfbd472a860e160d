// The small part of oidc-provider (v9, plain JavaScript without bundled types) that oauth-server.ts uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface OidcClient {
    clientId: string;
  }

  export interface OidcContext {
    oidc: { params: Record<string, unknown>; client?: OidcClient };
    body: unknown;
    status: number;
  }

  export interface StoredToken {
    kind: string;
    clientId: string;
    accountId?: string;
    scope?: string;
    exp: number;
    isValid: boolean;
    isExpired: boolean;
    expiration: number;
    tokenType: string;
    resourceServer?: unknown;
    save(): Promise<string>;
  }

  interface TokenModel {
    new (properties: Record<string, unknown>): StoredToken;
    find(value: string): Promise<StoredToken | undefined>;
  }

  export class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    registerGrantType(name: string, handler: (ctx: OidcContext) => Promise<void>, params?: string[]): void;
    on(event: string, listener: (...args: unknown[]) => void): this;
    readonly issuer: string;
    readonly Grant: TokenModel;
    readonly AccessToken: TokenModel;
    readonly ClientCredentials: TokenModel;
    readonly ResourceServer: new (identifier: string, info: Record<string, unknown>) => unknown;
  }

  export const errors: {
    InvalidGrant: new (description?: string) => Error;
    InvalidScope: new (description: string, scope?: string) => Error;
    InvalidRequest: new (description?: string) => Error;
    InvalidTarget: new (description?: string) => Error;
  };

  export default Provider;
}
