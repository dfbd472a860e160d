// The HTTP destination handler's public surface (see README.md).
export {
  createHttpDestinationHandler,
  type HttpDestinationHandler,
  type HttpDestinationHandlerOptions,
} from './handler.js';
export type { DestinationSource, HttpMetrics } from './context.js';
export { ERROR_ORIGINS, type ErrorOrigin, type FailureKind } from './errors.js';
export {
  rewriteRequest,
  rewriteResponseHeaders,
  joinPath,
  type HeaderList,
  type IncomingRequest,
  type RewriteOptions,
  type UpstreamRequest,
} from './rewrite.js';
export { trustStoreCertificates, TrustStoreError } from './trust-store.js';
