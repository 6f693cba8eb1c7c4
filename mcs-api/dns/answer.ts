import * as dns from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Packet, Question } from 'dns-packet';
import type { RRSet, ZoneIndex } from './zone.ts';

/**
 * One DNS message in, one reply out (or nothing), pure over the zone index. Wire format
 * through dns-packet.
 *
 * Invariants (the fuzz test checks the first two on 100,000 packets):
 * - Never throws. Returns a message dns-packet decodes, with QR set and the query's id,
 *   or undefined (drop) when the input is shorter than a header or is itself a response.
 * - Malformed queries get FORMERR: undecodable, not exactly one question, a name over
 *   253 characters or with a label over 63, or a label with bytes outside printable ASCII.
 * - Opcode other than QUERY: NOTIMP. Class other than IN (or ANY): REFUSED. A name
 *   outside the zone: REFUSED (authoritative for the zone only, no recursion).
 * - A name that does not exist: NXDOMAIN with the zone's SOA in authority; one that
 *   exists without records of the type: NOERROR, no answer, SOA in authority (NODATA).
 * - EDNS0: an OPT in the query gets an OPT in the reply (our UDP size 1232); version
 *   above 0 → BADVERS. UDP replies longer than the client's limit (512 without EDNS,
 *   else its advertised size, at least 512, at most 4096) are truncated: TC set, only
 *   the question (and OPT) kept, so the client retries over TCP. TCP replies may be
 *   up to 65,535 bytes.
 * - AA is set on every answer from the zone; RD is copied; RA is never set.
 */
export const TTL = 5;
export const OUR_UDP_SIZE = 1232;
const SOA_TTL = 5;

export interface AnswerOptions {
  transport: 'udp' | 'tcp';
}

type Rcode = 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED';
const RCODES: Record<Rcode, number> = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const RD = 1 << 8;
const PRINTABLE_LABEL = /^[\x21-\x7e]+$/;

function header(buf: Buffer): { id: number; qr: boolean; opcode: number; rd: boolean } {
  const flags = buf.readUInt16BE(2);
  return { id: buf.readUInt16BE(0), qr: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 0xf, rd: (flags & RD) !== 0 };
}

/** The reply for a query we cannot read: header only, never fails to encode. */
function bare(id: number, rd: boolean, rcode: Rcode): Buffer {
  return dns.encode({ type: 'response', id, flags: (rd ? RD : 0) | RCODES[rcode], questions: [] });
}

export function validName(name: string): boolean {
  if (name === '.') return true;
  if (name.length > 253) return false;
  return name.split('.').every((l) => l.length > 0 && l.length <= 63 && PRINTABLE_LABEL.test(l));
}

function soa(zone: ZoneIndex): Answer {
  return {
    type: 'SOA', name: zone.zone, ttl: SOA_TTL, class: 'IN',
    data: { mname: `ns.dns.${zone.zone}`, rname: `hostmaster.${zone.zone}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: SOA_TTL },
  };
}

function addressAnswers(name: string, set: RRSet, type: 'A' | 'AAAA'): Answer[] {
  return (type === 'A' ? set.a : set.aaaa).map((data) => ({ type, name, ttl: TTL, class: 'IN', data }));
}

interface Built {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

function resolve(q: Question, zone: ZoneIndex): Built {
  const lower = q.name.toLowerCase().replace(/\.$/, '');
  const none: Built = { rcode: 'NOERROR', answers: [], authorities: [], additionals: [] };
  if (!zone.inZone(lower)) return { ...none, rcode: 'REFUSED' };
  const found = zone.lookup(lower);
  if (!found.exists) return { ...none, rcode: 'NXDOMAIN', authorities: [soa(zone)] };
  const set = found.records;
  const name = q.name.replace(/\.$/, '');
  const answers: Answer[] = [];
  const additionals: Answer[] = [];
  const type = q.type as string;
  if (lower === zone.zone && (type === 'SOA' || type === 'ANY')) answers.push(soa(zone));
  if (lower === zone.zone && (type === 'NS' || type === 'ANY')) answers.push({ type: 'NS', name, ttl: TTL, class: 'IN', data: `ns.dns.${zone.zone}` });
  if (type === 'A' || type === 'ANY') answers.push(...addressAnswers(name, set, 'A'));
  if (type === 'AAAA' || type === 'ANY') answers.push(...addressAnswers(name, set, 'AAAA'));
  if (type === 'TXT' || type === 'ANY') for (const t of set.txt) answers.push({ type: 'TXT', name, ttl: TTL, class: 'IN', data: t });
  if (type === 'SRV' || type === 'ANY') {
    const targets = new Set<string>();
    for (const s of set.srv) {
      answers.push({ type: 'SRV', name, ttl: TTL, class: 'IN', data: { priority: s.priority, weight: s.weight, port: s.port, target: s.target } });
      targets.add(s.target);
    }
    for (const t of targets) {
      const tr = zone.lookup(t);
      if (!tr.exists) continue;
      additionals.push(...addressAnswers(t, tr.records, 'A'), ...addressAnswers(t, tr.records, 'AAAA'));
    }
  }
  if (answers.length === 0) return { ...none, authorities: [soa(zone)] };
  return { rcode: 'NOERROR', answers, authorities: [], additionals };
}

export function answer(query: Buffer, zone: ZoneIndex, options: AnswerOptions): Buffer | undefined {
  if (query.length < 12) return undefined;
  const h = header(query);
  if (h.qr) return undefined;
  try {
    return build(query, h, zone, options);
  } catch {
    return bare(h.id, h.rd, 'SERVFAIL');
  }
}

function build(query: Buffer, h: ReturnType<typeof header>, zone: ZoneIndex, options: AnswerOptions): Buffer {
  if (h.opcode !== 0) return bare(h.id, h.rd, 'NOTIMP');
  let packet: DecodedPacket;
  try {
    packet = dns.decode(query);
  } catch {
    return bare(h.id, h.rd, 'FORMERR');
  }
  const questions = packet.questions ?? [];
  const q = questions[0];
  if (questions.length !== 1 || q === undefined || !validName(q.name)) return bare(h.id, h.rd, 'FORMERR');
  const opts = (packet.additionals ?? []).filter((a): a is OptAnswer => a.type === 'OPT');
  if (opts.length > 1) return bare(h.id, h.rd, 'FORMERR');
  const opt = opts[0];
  const flagsBase = (h.rd ? RD : 0) | dns.AUTHORITATIVE_ANSWER;
  const replyOpt = (extendedRcode: number): OptAnswer[] =>
    opt === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: OUR_UDP_SIZE, extendedRcode, ednsVersion: 0, flags: 0, flag_do: false, options: [] }];
  const question: Question = { name: q.name, type: q.type, class: q.class };
  if (opt !== undefined && opt.ednsVersion !== 0) {
    // BADVERS = 16: upper 8 bits (1) in the OPT, lower 4 bits (0) in the header.
    return dns.encode({ type: 'response', id: h.id, flags: flagsBase & ~dns.AUTHORITATIVE_ANSWER, questions: [question], additionals: replyOpt(1) });
  }
  const cls = q.class as string;
  let built: Built;
  if (cls !== 'IN' && cls !== 'ANY') built = { rcode: 'REFUSED', answers: [], authorities: [], additionals: [] };
  else built = resolve(q, zone);
  const aa = built.rcode === 'REFUSED' ? 0 : dns.AUTHORITATIVE_ANSWER;
  const reply: Packet = {
    type: 'response',
    id: h.id,
    flags: (flagsBase & ~dns.AUTHORITATIVE_ANSWER) | aa | RCODES[built.rcode],
    questions: [question],
    answers: built.answers,
    authorities: built.authorities,
    additionals: [...built.additionals, ...replyOpt(0)],
  };
  let out = dns.encode(reply);
  const limit = options.transport === 'tcp' ? 65535 : opt === undefined ? 512 : Math.min(4096, Math.max(512, opt.udpPayloadSize));
  if (out.length > limit) {
    // Additional records go first; if the answer still does not fit, truncate.
    out = dns.encode({ ...reply, additionals: replyOpt(0) });
    if (out.length > limit) {
      if (options.transport === 'tcp') return bare(h.id, h.rd, 'SERVFAIL');
      out = dns.encode({ ...reply, flags: (reply.flags ?? 0) | dns.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: replyOpt(0) });
    }
  }
  return out;
}

/**
 * answer() with a cache of whole replies: two queries that differ only in their id get
 * the same reply but for the id, so the reply to (transport, query bytes after the id)
 * is kept until the zone changes (its generation) and copied with the new id. At most
 * `maxEntries` replies are kept (the cache is emptied when full: junk queries cannot
 * grow it). Same guarantees as answer().
 */
export class CachedAnswerer {
  readonly #zone: ZoneIndex;
  readonly #max: number;
  readonly #cache = new Map<string, Buffer | null>();
  #generation = -1;

  constructor(zone: ZoneIndex, maxEntries = 10_000) {
    this.#zone = zone;
    this.#max = maxEntries;
  }

  answer(query: Buffer, options: AnswerOptions): Buffer | undefined {
    if (query.length < 12) return undefined;
    if (this.#generation !== this.#zone.generation) {
      this.#cache.clear();
      this.#generation = this.#zone.generation;
    }
    const key = options.transport + query.toString('latin1', 2);
    let reply = this.#cache.get(key);
    if (reply === undefined) {
      reply = answer(query, this.#zone, options) ?? null;
      if (this.#cache.size >= this.#max) this.#cache.clear();
      this.#cache.set(key, reply);
      return reply ?? undefined;
    }
    if (reply === null) return undefined;
    const out = Buffer.allocUnsafe(reply.length);
    reply.copy(out);
    out[0] = query[0] ?? 0;
    out[1] = query[1] ?? 0;
    return out;
  }
}
