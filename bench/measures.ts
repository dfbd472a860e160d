// The measures by id, in the order a run makes them.
import { dns } from './measure-dns.js';
import { httpConnections, httpRate, httpSaturation } from './measure-http.js';
import type { MeasureContext, MeasureOutput } from './measure-kit.js';
import { tcpLatency, tcpThroughput } from './measure-tcp.js';
import type { MeasureId } from './options.js';

export type { MeasureContext, MeasureOutput } from './measure-kit.js';
export { localDnsAnswers } from './measure-dns.js';

export const RUNNERS: Record<MeasureId, (ctx: MeasureContext) => Promise<MeasureOutput>> = {
  'tcp-throughput': tcpThroughput,
  'tcp-latency': tcpLatency,
  'http-saturation': httpSaturation,
  'http-rate': httpRate,
  'http-connections': httpConnections,
  dns,
};
