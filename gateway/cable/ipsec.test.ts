import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, FakeRunner, IsthmusError, createCA, issueCertificate, silentLogger } from '../../core/index.ts';
import { Charon, charonConf } from './charon.ts';
import type { CableSpec, LocalEndpoint } from './driver.ts';
import {
  IpsecDriver, authFromSecrets, cableStatus, connConfig, connName, failureReason, isInitiator, parseListSas, remoteId, specKey, specProblem,
  type SaView,
} from './ipsec.ts';
import { decodeMessage, encodeMessage } from './vici.ts';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return err instanceof IsthmusError ? err.code : `other: ${String(err)}`;
  }
  return undefined;
}

async function codeOfAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof IsthmusError ? err.code : `other: ${String(err)}`;
  }
  return undefined;
}

const ca = createCA({ commonName: 'unit-ca', validDays: 1 });
const gw = issueCertificate({ ca, commonName: 'gw.a', dnsNames: ['gw.a'], usages: ['server', 'client'], validDays: 1 });
const timings = { dpdDelay: '5s', ikeRekeyTime: '4h', childRekeyTime: '1h' };

function local(secrets: Record<string, string>): LocalEndpoint {
  return { clusterId: 'a', privateIp: '192.0.2.1', port: 500, cidrs: ['10.1.0.0/16'], secrets };
}

function spec(over: Partial<CableSpec> = {}): CableSpec {
  return { remoteCluster: 'b', remoteIp: '192.0.2.2', remotePort: 500, remoteCidrs: ['10.2.0.0/16'], natTraversal: false, backend: {}, ...over };
}

test('authFromSecrets: certificates give pubkey with the CN as identity; PSK gives psk with the cluster id', () => {
  assert.equal(authFromSecrets(local({ certPem: gw.certPem, keyPem: gw.keyPem, caPem: ca.certPem })), { mode: 'pubkey', localId: 'gw.a' });
  assert.equal(authFromSecrets(local({ psk: 'x'.repeat(32) })), { mode: 'psk', localId: 'a' });
});

test('authFromSecrets: bad credentials are BAD_CREDENTIALS and the message holds no secret', () => {
  const other = createCA({ commonName: 'other-ca', validDays: 1 });
  const otherKey = issueCertificate({ ca, commonName: 'gw.x', dnsNames: ['gw.x'], usages: ['server'], validDays: 1 }).keyPem;
  const noSan = issueCertificate({ ca, commonName: 'gw.n', usages: ['server'], validDays: 1 });
  const cases: Record<string, string>[] = [
    {},
    { certPem: gw.certPem, keyPem: gw.keyPem },
    { certPem: gw.certPem, keyPem: otherKey, caPem: ca.certPem },
    { certPem: noSan.certPem, keyPem: noSan.keyPem, caPem: ca.certPem },
    { psk: 'tiny-psk' },
  ];
  for (const secrets of cases) {
    try {
      authFromSecrets(local(secrets));
      assert.unreachable(JSON.stringify(Object.keys(secrets)));
    } catch (err) {
      assert.instance(err, IsthmusError);
      assert.is((err as IsthmusError).code, ErrorCodes.BAD_CREDENTIALS, JSON.stringify(Object.keys(secrets)));
      assert.not.match((err as Error).message, 'PRIVATE KEY');
      assert.not.match((err as Error).message, 'tiny-psk');
    }
  }
  // a certificate from another CA fails the chain check
  assert.ok(codeOf(() => authFromSecrets(local({ certPem: gw.certPem, keyPem: gw.keyPem, caPem: other.certPem }))) !== undefined);
});

test('specProblem: a table of bad specs, each with its reason; good specs pass', () => {
  const l = local({});
  const bad: [Partial<CableSpec>, string][] = [
    [{ remoteCluster: 'Bad_Id' }, 'RFC-1123'],
    [{ remoteCluster: 'a' }, 'local cluster itself'],
    [{ remoteIp: '300.1.1.1' }, 'not an IP address'],
    [{ remoteIp: 'gw.example' }, 'not an IP address'],
    [{ remoteIp: '2001:db8::1' }, 'family'],
    [{ remotePort: 0 }, 'between 1 and 65535'],
    [{ remotePort: 70000 }, 'between 1 and 65535'],
    [{ remoteCidrs: [] }, 'no CIDRs'],
    [{ remoteCidrs: ['10.2.0.0/33'] }, 'not a CIDR'],
    [{ backend: { 'cert-cn': 'has space' } }, 'not a DNS name'],
  ];
  for (const [over, why] of bad) assert.match(specProblem(l, spec(over)) ?? '', why, JSON.stringify(over));
  assert.is(specProblem(l, spec()), undefined);
  assert.is(specProblem(l, spec({ remotePort: 4500, natTraversal: true, backend: { 'cert-cn': 'gw.b' } })), undefined);
});

test('connConfig: one IKEv2 connection per remote, selectors from the CIDRs, encap from natTraversal, no secret', () => {
  const secrets = { certPem: gw.certPem, keyPem: gw.keyPem, caPem: ca.certPem };
  const l = local(secrets);
  const auth = authFromSecrets(l);
  const msg = connConfig(l, auth, spec({ natTraversal: true, backend: { 'cert-cn': 'gw.b' } }), timings);
  const conn = msg['isthmus-b'] as Record<string, unknown>;
  assert.is(conn['version'], '2');
  assert.equal(conn['local_addrs'], ['192.0.2.1']);
  assert.equal(conn['remote_addrs'], ['192.0.2.2']);
  assert.is(conn['encap'], 'yes');
  assert.equal(conn['local'], { auth: 'pubkey', id: 'gw.a' });
  assert.equal(conn['remote'], { auth: 'pubkey', id: 'gw.b' });
  const child = (conn['children'] as Record<string, Record<string, unknown>>)['isthmus-b-net'];
  assert.equal(child?.['local_ts'], ['10.1.0.0/16']);
  assert.equal(child?.['remote_ts'], ['10.2.0.0/16']);
  // a is lower than b: a initiates and restarts on DPD; b would only clear
  assert.is(child?.['dpd_action'], 'restart');
  const back = connConfig({ ...l, clusterId: 'c' }, auth, spec(), timings)['isthmus-b'] as Record<string, Record<string, Record<string, unknown>>>;
  assert.is(back['children']?.['isthmus-b-net']?.['dpd_action'], 'clear');
  assert.is((connConfig(l, auth, spec(), timings)['isthmus-b'] as Record<string, unknown>)['encap'], 'no');
  // it encodes as VICI, and neither the key nor the CA's key is in it
  const wire = encodeMessage(msg);
  assert.equal(decodeMessage(wire), msg);
  assert.not.ok(wire.toString('latin1').includes('PRIVATE KEY'));
  const psk = connConfig(local({ psk: 'p'.repeat(40) }), { mode: 'psk', localId: 'a' }, spec(), timings);
  assert.not.ok(encodeMessage(psk).toString('latin1').includes('pppp'));
  assert.equal((psk['isthmus-b'] as Record<string, unknown>)['remote'], { auth: 'psk', id: 'b' });
});

test('isInitiator, remoteId, connName', () => {
  assert.ok(isInitiator('a', 'b'));
  assert.not.ok(isInitiator('b', 'a'));
  assert.is(remoteId(spec()), 'b');
  assert.is(remoteId(spec({ backend: { 'cert-cn': 'gw.b' } })), 'gw.b');
  assert.is(connName('b'), 'isthmus-b');
});

test('specKey: equal for equal specs (backend key order ignored), different for any change', () => {
  const base = spec({ backend: { x: '1', y: '2' } });
  assert.is(specKey(base), specKey(spec({ backend: { y: '2', x: '1' } })));
  for (const over of [{ remoteIp: '192.0.2.9' }, { remotePort: 4500 }, { remoteCidrs: ['10.3.0.0/16'] }, { natTraversal: true }, { backend: { x: '1' } }]) {
    assert.is.not(specKey(spec({ backend: { x: '1', y: '2' }, ...over })), specKey(base), JSON.stringify(over));
  }
});

const listSaEvents = [
  {
    'isthmus-b': {
      uniqueid: '3', state: 'ESTABLISHED', established: '12',
      'child-sas': { 'isthmus-b-net-4': { state: 'INSTALLED', 'bytes-in': '100', 'bytes-out': '200', encap: 'yes' } },
    },
  },
  { 'isthmus-c': { uniqueid: '5', state: 'CONNECTING', 'child-sas': {} } },
];

test('parseListSas groups IKE_SAs by connection with their children and counters', () => {
  const m = parseListSas(listSaEvents);
  assert.equal(m.get('isthmus-b'), [{ uniqueId: '3', ikeState: 'ESTABLISHED', established: 12, children: [{ state: 'INSTALLED', bytesIn: 100, bytesOut: 200, encap: true }] }]);
  assert.equal(m.get('isthmus-c'), [{ uniqueId: '5', ikeState: 'CONNECTING', established: undefined, children: [] }]);
});

test('cableStatus: a table of SA states', () => {
  const now = 1_000_000;
  const sas = parseListSas(listSaEvents);
  const est = sas.get('isthmus-b') ?? [];
  const rows: [readonly SaView[], { initiator: boolean; lastError: string | undefined }, string, string | undefined][] = [
    [est, { initiator: true, lastError: undefined }, 'connected', undefined],
    [est, { initiator: true, lastError: 'old failure' }, 'connected', undefined],
    [sas.get('isthmus-c') ?? [], { initiator: true, lastError: undefined }, 'connecting', 'IKE_SA CONNECTING, no CHILD_SA yet'],
    [[{ uniqueId: '1', ikeState: 'ESTABLISHED', established: 1, children: [{ state: 'REKEYING', bytesIn: 0, bytesOut: 0, encap: false }] }], { initiator: false, lastError: undefined }, 'connecting', 'IKE_SA ESTABLISHED, CHILD_SA REKEYING'],
    [[], { initiator: true, lastError: 'giving up after 4 retransmits' }, 'error', 'giving up after 4 retransmits'],
    [[], { initiator: true, lastError: undefined }, 'connecting', 'initiating'],
    [[], { initiator: false, lastError: undefined }, 'connecting', 'waiting for b to initiate (the lower cluster id initiates)'],
  ];
  for (const [list, ctx, state, message] of rows) {
    const s = cableStatus(spec(), list, { ...ctx, nowMs: now });
    assert.is(s.state, state);
    assert.is(s.message, message);
  }
  const up = cableStatus(spec(), est, { initiator: true, lastError: undefined, nowMs: now });
  assert.equal(up, { remoteCluster: 'b', remoteIp: '192.0.2.2', state: 'connected', rxBytes: 100, txBytes: 200, establishedAt: now - 12_000 });
});

test('failureReason picks the telling log line', () => {
  const lines = ['initiating IKE_SA isthmus-b[1] to 192.0.2.2', 'sending packet', 'no trusted RSA public key found for \'gw.b\'', 'establishing connection failed'];
  assert.match(failureReason(lines, 'x'), "no trusted RSA public key found for 'gw.b' (the remote certificate is not from the clusterset CA");
  assert.match(failureReason(['retransmit 4 of request', 'giving up after 4 retransmits'], 'x'), /^giving up after 4 retransmits \(no answer from the remote gateway/);
  assert.match(failureReason(['received AUTHENTICATION_FAILED notify error'], 'x'), 'does it trust the same clusterset CA');
  assert.is(failureReason(['sending packet', 'establishing connection failed'], 'x'), 'establishing connection failed');
  assert.is(failureReason([], 'establishing CHILD_SA failed'), 'establishing CHILD_SA failed');
});

test('charonConf: plugins per data path, private socket and log, our ports', () => {
  const lib = charonConf({ dir: '/tmp/x', port: 500, portNatT: 4500, dataPath: 'libipsec' });
  assert.match(lib, /load = kernel-libipsec .*vici/);
  assert.match(lib, 'socket = unix:///tmp/x/charon.vici');
  assert.match(lib, 'path = /tmp/x/charon.log');
  assert.match(lib, 'port_nat_t = 4500');
  const xfrm = charonConf({ dir: '/tmp/x', port: 600, portNatT: 601, dataPath: 'xfrm' });
  assert.not.match(xfrm, 'kernel-libipsec');
  assert.match(xfrm, 'port = 600');
});

test('Charon: missing binary is MISSING_DEPENDENCY naming strongswan-charon; bad folder or ports INVALID_CONFIG', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'istc-'));
  try {
    const runner = new FakeRunner();
    const c = new Charon({ runner, logger: silentLogger(), dir, charonPath: '/nonexistent/charon', dataPath: 'libipsec' });
    try {
      await c.ensure();
      assert.unreachable('ensure should fail');
    } catch (err) {
      assert.is((err as IsthmusError).code, ErrorCodes.MISSING_DEPENDENCY);
      assert.match((err as Error).message, 'strongswan-charon');
    }
    assert.equal(runner.calls, []);
    assert.is(codeOf(() => new Charon({ runner, logger: silentLogger(), dir: `/tmp/${'x'.repeat(120)}` })), ErrorCodes.INVALID_CONFIG);
    assert.is(codeOf(() => new Charon({ runner, logger: silentLogger(), dir, port: 4500, portNatT: 4500 })), ErrorCodes.INVALID_CONFIG);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IpsecDriver: set() before init() is FAILED_PRECONDITION; init() refuses bad local endpoints', async () => {
  const d = new IpsecDriver({ runner: new FakeRunner(), logger: silentLogger(), dir: '/tmp/unused-ipsec' });
  assert.is(await codeOfAsync(d.set([])), ErrorCodes.FAILED_PRECONDITION);
  assert.is(await codeOfAsync(d.init({ ...local({ psk: 'p'.repeat(40) }), clusterId: 'Bad' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await codeOfAsync(d.init({ ...local({ psk: 'p'.repeat(40) }), cidrs: [] })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await codeOfAsync(d.init(local({}))), ErrorCodes.BAD_CREDENTIALS);
});

test('IpsecDriver: charon not installed is MISSING_DEPENDENCY at init, naming the package', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'istd-'));
  try {
    const runner = new FakeRunner();
    const d = new IpsecDriver({ runner, logger: silentLogger(), dir, charonPath: '/nonexistent/charon', dataPath: 'libipsec' });
    try {
      await d.init(local({ psk: 'p'.repeat(40) }));
      assert.unreachable('init should fail');
    } catch (err) {
      assert.is((err as IsthmusError).code, ErrorCodes.MISSING_DEPENDENCY);
      assert.match((err as Error).message, 'strongswan-charon');
    }
    assert.equal(runner.calls, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
