import * as dns from 'dns-packet';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { answer, CachedAnswerer, validName } from './answer.ts';
import { ZoneIndex } from './zone.ts';
import { seededRandom } from '../../core/testing.ts';

/**
 * 100,000 random and mutated DNS packets (seeded, so a failure replays): answer() never
 * throws, and gives either nothing (a runt or a response: dropped) or a reply that
 * dns-packet decodes, with QR set and the query's id, and that fits the transport.
 */

const zone = new ZoneIndex();
zone.set('demo/echo', { namespace: 'demo', name: 'echo', type: 'ClusterSetIP', ips: ['10.101.0.50', 'fd00::50'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }], slices: [] });
zone.set('demo/db', {
  namespace: 'demo', name: 'db', type: 'Headless', ips: [], ports: [{ name: 'pg', protocol: 'TCP', port: 5432 }],
  slices: [{ cluster: 'c2', portNames: ['pg'], endpoints: Array.from({ length: 80 }, (_, i) => ({ hostname: `db-${i}`, addresses: [`10.2.0.${i}`], ready: true })) }],
});

const names = ['echo.demo.svc.clusterset.local', '_http._tcp.echo.demo.svc.clusterset.local', 'db.demo.svc.clusterset.local', 'db-1.c2.db.demo.svc.clusterset.local', 'dns-version.clusterset.local', 'clusterset.local', 'example.org'];
const types = ['A', 'AAAA', 'SRV', 'TXT', 'SOA', 'NS', 'ANY', 'MX', 'PTR'] as const;

function seedPacket(rand: () => number): Buffer {
  const name = names[Math.floor(rand() * names.length)] ?? 'clusterset.local';
  const type = types[Math.floor(rand() * types.length)] ?? 'A';
  const withOpt = rand() < 0.5;
  return dns.encode({
    type: 'query', id: Math.floor(rand() * 65536), flags: rand() < 0.5 ? dns.RECURSION_DESIRED : 0,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals: withOpt ? [{ type: 'OPT', name: '.', udpPayloadSize: Math.floor(rand() * 5000), extendedRcode: 0, ednsVersion: rand() < 0.9 ? 0 : 1, flags: 0, flag_do: false, options: [] }] : [],
  });
}

function mutate(p: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(p);
  const n = 1 + Math.floor(rand() * 4);
  let out: Buffer = b;
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.5 && out.length > 0) out[Math.floor(rand() * out.length)] = Math.floor(rand() * 256);
    else if (r < 0.7) out = out.subarray(0, Math.floor(rand() * out.length));
    else if (r < 0.85) out = Buffer.concat([out, Buffer.from(Array.from({ length: Math.floor(rand() * 20) }, () => Math.floor(rand() * 256)))]);
    else if (out.length >= 12) out.writeUInt16BE(Math.floor(rand() * 4), 4 + 2 * Math.floor(rand() * 4));
  }
  return out;
}

test('100,000 random and mutated packets: never a crash; a well-formed reply or a drop', () => {
  const rand = seededRandom(0x157e5);
  const cached = new CachedAnswerer(zone, 1000);
  let replies = 0;
  let drops = 0;
  for (let i = 0; i < 100_000; i++) {
    const kind = rand();
    const pkt = kind < 0.3
      ? Buffer.from(Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)))
      : kind < 0.95 ? mutate(seedPacket(rand), rand) : seedPacket(rand);
    const transport = rand() < 0.8 ? 'udp' : 'tcp';
    let out: Buffer | undefined;
    try {
      out = answer(pkt, zone, { transport });
      // the server's cache gives the same bytes (the first 20,000: the rest adds nothing)
      if (i < 20_000) assert.equal(cached.answer(pkt, { transport }), out, `packet ${i}: cached reply differs`);
    } catch (err) {
      assert.unreachable(`packet ${i} (${pkt.toString('hex')}) threw: ${String(err)}`);
    }
    if (out === undefined) {
      assert.ok(pkt.length < 12 || (pkt.readUInt16BE(2) & 0x8000) !== 0, `packet ${i} (${pkt.toString('hex')}) was dropped though it is a query`);
      drops++;
      continue;
    }
    const r = dns.decode(out);
    assert.ok(r.flag_qr, `reply ${i} has QR`);
    assert.is(r.id, pkt.readUInt16BE(0), `reply ${i} has the query's id`);
    assert.ok(out.length <= (transport === 'udp' ? 4096 : 65535), `reply ${i} fits`);
    replies++;
  }
  assert.ok(replies > 50_000 && drops > 1_000, `replies ${replies}, drops ${drops}`);
});

test('name limits: 253 characters and 63-character labels', () => {
  assert.ok(validName('a'.repeat(63) + '.clusterset.local'));
  assert.not.ok(validName('a'.repeat(64) + '.clusterset.local'));
  const at253 = [...Array.from({ length: 3 }, () => 'a'.repeat(63)), 'b'.repeat(253 - 3 * 64 - 17), 'clusterset', 'local'].join('.');
  assert.is(at253.length, 253);
  assert.ok(validName(at253));
  assert.not.ok(validName(at253 + 'x'));
  assert.not.ok(validName('a..clusterset.local'));
  assert.not.ok(validName('a b.clusterset.local'));
});

test.run();
