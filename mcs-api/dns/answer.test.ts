import * as dns from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { answer, CachedAnswerer, OUR_UDP_SIZE } from './answer.ts';
import { ZoneIndex, type DnsService } from './zone.ts';

const echo: DnsService = {
  namespace: 'demo', name: 'echo', type: 'ClusterSetIP', ips: ['10.101.0.50', 'fd00:101::50'],
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }, { name: 'dns', protocol: 'UDP', port: 8080 }, { name: '', protocol: 'TCP', port: 9000 }],
  slices: [],
};
const db: DnsService = {
  namespace: 'demo', name: 'db', type: 'Headless', ips: [],
  ports: [{ name: 'pg', protocol: 'TCP', port: 5432 }, { name: 'metrics', protocol: 'TCP', port: 9187 }],
  slices: [
    { cluster: 'c2', portNames: ['pg', 'metrics'], endpoints: [{ hostname: 'db-0', addresses: ['10.2.0.5'], ready: true }, { hostname: 'db-1', addresses: ['10.2.0.6'], ready: false }] },
    { cluster: 'c3', portNames: ['pg'], endpoints: [{ hostname: 'db-0', addresses: ['fd00:3::7'], ready: true }] },
  ],
};
const empty: DnsService = { ...db, name: 'empty', slices: [{ cluster: 'c2', portNames: ['pg'], endpoints: [{ hostname: 'x', addresses: ['10.2.0.9'], ready: false }] }] };

function zone(): ZoneIndex {
  const z = new ZoneIndex();
  z.set('demo/echo', echo);
  z.set('demo/db', db);
  z.set('demo/empty', empty);
  return z;
}

function ask(z: ZoneIndex, name: string, type: string, extra: Partial<Packet> = {}, transport: 'udp' | 'tcp' = 'udp'): DecodedPacket & { rcode?: string } {
  const q = dns.encode({ type: 'query', id: 4242, flags: dns.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }], ...extra });
  const out = answer(q, z, { transport });
  assert.ok(out, 'a reply');
  const r = dns.decode(out) as DecodedPacket & { rcode?: string };
  assert.is(r.id, 4242);
  assert.ok(r.flag_qr);
  return r;
}
const data = (answers: Answer[] | undefined): unknown[] => (answers ?? []).map((a) => ('data' in a ? a.data : undefined));

test('schema version TXT', () => {
  const r = ask(zone(), 'dns-version.clusterset.local', 'TXT');
  assert.equal(data(r.answers).map((d) => String(d)), ['1.0.0']);
  assert.ok(r.flag_aa);
});

test('ClusterSetIP: A and AAAA are the clusterset IPs, any case', () => {
  assert.equal(data(ask(zone(), 'echo.demo.svc.clusterset.local', 'A').answers), ['10.101.0.50']);
  assert.equal(data(ask(zone(), 'ECHO.Demo.svc.clusterset.local.', 'AAAA').answers), ['fd00:101::50']);
});

test('ClusterSetIP: SRV for named ports with the address in additional; bare name: every port once', () => {
  const r = ask(zone(), '_http._tcp.echo.demo.svc.clusterset.local', 'SRV');
  assert.equal(data(r.answers), [{ priority: 0, weight: 100, port: 8080, target: 'echo.demo.svc.clusterset.local' }]);
  assert.equal(data(r.additionals).sort(), ['10.101.0.50', 'fd00:101::50']);
  assert.equal(data(ask(zone(), '_dns._udp.echo.demo.svc.clusterset.local', 'SRV').answers).length, 1);
  assert.equal((data(ask(zone(), 'echo.demo.svc.clusterset.local', 'SRV').answers) as { port: number }[]).map((s) => s.port), [8080, 9000]);
});

test('ClusterSetIP: no per-cluster name, unnamed ports have no SRV name, wrong protocol does not exist', () => {
  assert.is(ask(zone(), 'c2.echo.demo.svc.clusterset.local', 'A').rcode, 'NXDOMAIN');
  assert.is(ask(zone(), '_http._udp.echo.demo.svc.clusterset.local', 'SRV').rcode, 'NXDOMAIN');
});

test('Headless: ready endpoints of every cluster, per-pod names, SRV per ready endpoint and port', () => {
  const z = zone();
  assert.equal(data(ask(z, 'db.demo.svc.clusterset.local', 'A').answers), ['10.2.0.5']);
  assert.equal(data(ask(z, 'db.demo.svc.clusterset.local', 'AAAA').answers), ['fd00:3::7']);
  assert.equal(data(ask(z, 'db-0.c2.db.demo.svc.clusterset.local', 'A').answers), ['10.2.0.5']);
  assert.equal(data(ask(z, 'db-0.c3.db.demo.svc.clusterset.local', 'AAAA').answers), ['fd00:3::7']);
  assert.is(ask(z, 'db-1.c2.db.demo.svc.clusterset.local', 'A').rcode, 'NXDOMAIN', 'not ready: no name');
  const srv = data(ask(z, '_pg._tcp.db.demo.svc.clusterset.local', 'SRV').answers) as { target: string; port: number }[];
  assert.equal(srv.map((s) => `${s.port} ${s.target}`).sort(), ['5432 db-0.c2.db.demo.svc.clusterset.local', '5432 db-0.c3.db.demo.svc.clusterset.local']);
  const metrics = data(ask(z, '_metrics._tcp.db.demo.svc.clusterset.local', 'SRV').answers) as { target: string }[];
  assert.equal(metrics.map((s) => s.target), ['db-0.c2.db.demo.svc.clusterset.local'], 'a port reaches only the clusters that export it');
});

test('Headless: no ready endpoint → NXDOMAIN; the per-cluster name carries no record (NODATA)', () => {
  const z = zone();
  assert.is(ask(z, 'empty.demo.svc.clusterset.local', 'A').rcode, 'NXDOMAIN');
  const r = ask(z, 'c2.db.demo.svc.clusterset.local', 'A');
  assert.equal([r.rcode, r.answers?.length], ['NOERROR', 0]);
});

test('NXDOMAIN versus NODATA, both with the SOA', () => {
  const z = zone();
  for (const [name, type, rcode] of [
    ['nope.demo.svc.clusterset.local', 'A', 'NXDOMAIN'],
    ['echo.other.svc.clusterset.local', 'A', 'NXDOMAIN'],
    ['echo.demo.svc.clusterset.local', 'TXT', 'NOERROR'],
    ['echo.demo.svc.clusterset.local', 'MX', 'NOERROR'],
    ['demo.svc.clusterset.local', 'A', 'NOERROR'],
    ['svc.clusterset.local', 'A', 'NOERROR'],
    ['_tcp.echo.demo.svc.clusterset.local', 'SRV', 'NOERROR'],
  ] as const) {
    const r = ask(z, name, type);
    assert.is(r.rcode, rcode, `${name} ${type}`);
    assert.is(r.answers?.length, 0);
    assert.equal(r.authorities?.map((a) => a.type), ['SOA'], `${name} SOA`);
  }
  assert.equal(ask(z, 'clusterset.local', 'SOA').answers?.map((a) => a.type), ['SOA']);
});

test('outside the zone: REFUSED; other opcodes: NOTIMP; two questions: FORMERR', () => {
  const z = zone();
  assert.is(ask(z, 'example.com', 'A').rcode, 'REFUSED');
  assert.is(ask(z, 'echo.demo.svc.cluster.local', 'A').rcode, 'REFUSED');
  const notify = Buffer.from(dns.encode({ type: 'query', id: 1, questions: [{ name: 'clusterset.local', type: 'SOA', class: 'IN' }] }));
  notify.writeUInt16BE(4 << 11, 2);
  assert.is((dns.decode(answer(notify, z, { transport: 'udp' }) as Buffer) as { rcode?: string }).rcode, 'NOTIMP');
  const two = dns.encode({ type: 'query', id: 1, questions: [{ name: 'a.clusterset.local', type: 'A' }, { name: 'b.clusterset.local', type: 'A' }] });
  assert.is((dns.decode(answer(two, z, { transport: 'udp' }) as Buffer) as { rcode?: string }).rcode, 'FORMERR');
});

test('a name over 253 characters or a label over 63: an error answer', () => {
  const z = zone();
  const long = Array.from({ length: 5 }, () => 'a'.repeat(50)).join('.') + '.clusterset.local';
  assert.ok(long.length > 253);
  // dns-packet will not encode an over-long name, so build it by hand: 5 labels of 50 + the zone.
  const labels = [...Array.from({ length: 5 }, () => 'a'.repeat(50)), 'clusterset', 'local'];
  const name = Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const q = Buffer.concat([Buffer.from([0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), name, Buffer.from([0, 1, 0, 1])]);
  const r = dns.decode(answer(q, z, { transport: 'udp' }) as Buffer) as DecodedPacket & { rcode?: string };
  assert.equal([r.id, r.rcode], [7, 'FORMERR']);
  // A length byte of 64..191 is not a label on the wire: FORMERR too.
  const bad = Buffer.concat([Buffer.from([0, 8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]);
  assert.is((dns.decode(answer(bad, z, { transport: 'udp' }) as Buffer) as { rcode?: string }).rcode, 'FORMERR');
});

test('EDNS0: OPT answered with ours; version 1 → BADVERS', () => {
  const z = zone();
  const opt = { type: 'OPT' as const, name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
  const r = ask(z, 'echo.demo.svc.clusterset.local', 'A', { additionals: [opt] });
  const ro = r.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize: number } | undefined;
  assert.is(ro?.udpPayloadSize, OUR_UDP_SIZE);
  const bad = ask(z, 'echo.demo.svc.clusterset.local', 'A', { additionals: [{ ...opt, ednsVersion: 1 }] });
  assert.is((bad.additionals?.find((a) => a.type === 'OPT') as { extendedRcode: number } | undefined)?.extendedRcode, 1);
});

test('truncation: a UDP reply over 512 bytes (no EDNS) sets TC and drops the records; TCP carries it all', () => {
  const z = new ZoneIndex();
  const endpoints = Array.from({ length: 60 }, (_, i) => ({ hostname: `p${i}`, addresses: [`10.2.1.${i}`], ready: true }));
  z.set('demo/big', { namespace: 'demo', name: 'big', type: 'Headless', ips: [], ports: [], slices: [{ cluster: 'c2', portNames: [], endpoints }] });
  const udp = ask(z, 'big.demo.svc.clusterset.local', 'A');
  assert.ok(udp.flag_tc);
  assert.is(udp.answers?.length, 0);
  const tcp = ask(z, 'big.demo.svc.clusterset.local', 'A', {}, 'tcp');
  assert.not.ok(tcp.flag_tc);
  assert.is(tcp.answers?.length, 60);
  const opt = { type: 'OPT' as const, name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
  assert.is(ask(z, 'big.demo.svc.clusterset.local', 'A', { additionals: [opt] }).answers?.length, 60, 'EDNS0 4096 fits');
});

test('index updates: a Service replaced or removed changes its names only', () => {
  const z = zone();
  z.set('demo/echo', undefined);
  assert.is(ask(z, 'echo.demo.svc.clusterset.local', 'A').rcode, 'NXDOMAIN');
  assert.is(ask(z, 'demo.svc.clusterset.local', 'A').rcode, 'NOERROR', 'db still holds the namespace');
  z.set('demo/db', undefined);
  z.set('demo/empty', undefined);
  assert.is(ask(z, 'demo.svc.clusterset.local', 'A').rcode, 'NXDOMAIN');
  z.set('demo/echo', { ...echo, ips: ['10.101.0.51'] });
  assert.equal(data(ask(z, 'echo.demo.svc.clusterset.local', 'A').answers), ['10.101.0.51']);
});

test('cached replies: the same bytes but the id; a zone change is seen at once', () => {
  const z = zone();
  const cached = new CachedAnswerer(z, 4);
  const q = (id: number, name: string): Buffer => dns.encode({ type: 'query', id, questions: [{ name, type: 'A', class: 'IN' }] });
  const first = cached.answer(q(1, 'echo.demo.svc.clusterset.local'), { transport: 'udp' });
  const second = cached.answer(q(2, 'echo.demo.svc.clusterset.local'), { transport: 'udp' });
  assert.ok(first && second);
  assert.is(second.readUInt16BE(0), 2);
  assert.equal(second.subarray(2), first.subarray(2));
  assert.equal(second, answer(q(2, 'echo.demo.svc.clusterset.local'), z, { transport: 'udp' }));
  z.set('demo/echo', { ...echo, ips: ['10.101.0.99'] });
  assert.equal(data(dns.decode(cached.answer(q(3, 'echo.demo.svc.clusterset.local'), { transport: 'udp' }) as Buffer).answers), ['10.101.0.99']);
  for (let i = 0; i < 10; i++) cached.answer(q(i, `n${i}.clusterset.local`), { transport: 'udp' });
  assert.is(cached.answer(Buffer.alloc(3), { transport: 'udp' }), undefined);
});

test('responses and runts are dropped', () => {
  assert.is(answer(Buffer.alloc(5), zone(), { transport: 'udp' }), undefined);
  const resp = dns.encode({ type: 'response', id: 1, questions: [{ name: 'clusterset.local', type: 'SOA' }] });
  assert.is(answer(resp, zone(), { transport: 'udp' }), undefined);
});

test.run();
