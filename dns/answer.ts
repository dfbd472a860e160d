// Encodes the authoritative answers for destination names (A/AAAA with VIPs, or NOERROR/no data with
// an SOA). dns2 does the encoding: these messages are built from scratch out of a handful of plain
// records, which is what its encoder is for (name compression, RDLENGTH, the OPT record).
import { Packet, type Question, type Resource } from 'dns2';
import type { DecodedQuery } from './query.js';
import type { ZoneDecision } from './zone.js';
import { CLASS_IN, OWN_UDP_SIZE, TYPE } from './wire.js';

/** SOA names of the synthesized zone; `.invalid` (RFC 2606) so they can never resolve anywhere. */
export const SOA_MNAME = 'dns.detour.invalid';
export const SOA_RNAME = 'hostmaster.detour.invalid';

type Record = Resource;

export function encodeLocalAnswer(
  query: DecodedQuery,
  decision: Exclude<ZoneDecision, { kind: 'forward' }>,
  ttl: number,
): Buffer {
  const name = query.question.name;
  const packet = new Packet();
  // Packet.Header copies every key it is given; `cd` is a real header bit its typings omit.
  packet.header = new Packet.Header({
    id: query.header.id,
    qr: 1,
    aa: 1,
    rd: query.header.rd ? 1 : 0,
    ra: 1,
    ...{ cd: query.header.cd ? 1 : 0 },
  });
  packet.questions = [{ name, type: query.question.type, class: query.question.class } as Question];
  if (decision.kind === 'answer') {
    packet.answers = decision.records.map(
      (r) => ({ name, type: TYPE[r.type], class: CLASS_IN, ttl, address: r.address }) as Record,
    );
  } else {
    // The owner is the query name: as far as any resolver can tell, each destination name is the
    // apex of its own zone. MINIMUM = TTL: the negative-caching time (RFC 2308 §5).
    packet.authorities = [
      {
        name,
        type: TYPE.SOA,
        class: CLASS_IN,
        ttl,
        primary: SOA_MNAME,
        admin: SOA_RNAME,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expiration: 86400,
        minimum: ttl,
      } as Record,
    ];
  }
  if (query.edns)
    packet.additionals = [
      Packet.Resource.EDNS([], { udpPayloadSize: OWN_UDP_SIZE, doFlag: query.edns.dnssecOk }) as Record,
    ];
  return packet.toBuffer();
}
