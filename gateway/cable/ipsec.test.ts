import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, FakeRunner, IsthmusError, createCA, issueCertificate, silentLogger, type FakeCall, type RunResult } from '../../core/index.ts';
import { Charon, PLUGIN_PACKAGE, charonConf, charonPlugins, installedPlugins, missingPluginsError } from './charon.ts';
import type { CableSpec, LocalEndpoint } from './driver.ts';
import {
  IpsecDriver, pemBlocks, anchorFor, authFromSecrets, cableStatus, connConfig, connName, failureReason, hasTableRule, isInitiator, parseAddresses, parseListSas,
  parseRoutes, planAnchors, planRoutes, preferredSource, remoteId, specKey, specProblem, type SaView,
} from './ipsec.ts';
import { PacketType, SegmentReader, decodeMessage, decodePacket, encodeMessage, encodePacket, type Packet, type ViciMessage } from './vici.ts';
import { errorCode, errorCodeAsync } from '../../core/testing.ts';

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
  // a certificate from another CA fails the chain check; a bundle holding its CA passes, in any order
  assert.is(errorCode(() => authFromSecrets(local({ certPem: gw.certPem, keyPem: gw.keyPem, caPem: other.certPem }))), ErrorCodes.BAD_CREDENTIALS);
  assert.is(errorCode(() => authFromSecrets(local({ certPem: gw.certPem, keyPem: gw.keyPem, caPem: `${other.certPem}${ca.certPem}` }))), undefined);
  assert.is(errorCode(() => authFromSecrets(local({ certPem: gw.certPem, keyPem: gw.keyPem, caPem: 'not a pem' }))), ErrorCodes.BAD_CREDENTIALS);
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

test('pemBlocks splits a CA bundle into its certificates', () => {
  const other = createCA({ commonName: 'next-ca', validDays: 1 });
  const blocks = pemBlocks(`${ca.certPem}\n${other.certPem}`);
  assert.is(blocks.length, 2);
  assert.ok(blocks[0]?.startsWith('-----BEGIN CERTIFICATE-----'));
  assert.is(blocks[1]?.trim(), other.certPem.trim());
  assert.equal(pemBlocks('garbage'), []);
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

const ipAddrJson = JSON.stringify([
  { ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }, { family: 'inet', local: '10.101.0.0', prefixlen: 32, scope: 'global' }] },
  { ifname: 'cni0', flags: ['BROADCAST', 'UP'], addr_info: [{ family: 'inet', local: '10.1.0.1', prefixlen: 24, scope: 'global' }, { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' }] },
  { ifname: 'eth1', flags: ['BROADCAST'], addr_info: [{ family: 'inet', local: '10.101.5.5', prefixlen: 24, scope: 'global' }] },
  { ifname: 'eth0', flags: ['UP'], addr_info: [{ family: 'inet6', local: 'fd00::5', prefixlen: 64, scope: 'global', tentative: true }, { family: 'inet', local: '192.0.2.1', prefixlen: 24, scope: 'global' }] },
]);

test('parseAddresses: global addresses on interfaces that are up, nothing tentative', () => {
  assert.equal(parseAddresses(ipAddrJson), [{ ip: '10.101.0.0', dev: 'lo' }, { ip: '10.1.0.1', dev: 'cni0' }, { ip: '192.0.2.1', dev: 'eth0' }]);
  assert.equal(parseAddresses(''), []);
  assert.equal(parseAddresses('{"not":"a list"}'), []);
});

test('planAnchors: an anchor (the network address) for each local CIDR the host holds no address in; ours stay while their CIDR is local', () => {
  const host = [{ ip: '10.1.0.1', dev: 'cni0' }, { ip: '192.0.2.1', dev: 'eth0' }];
  const cidrs = ['10.1.0.0/16', '10.101.0.0/16'];
  assert.is(anchorFor('10.101.0.0/16'), '10.101.0.0');
  assert.is(anchorFor('fd00:1::/64'), 'fd00:1::');
  assert.equal(planAnchors(cidrs, host, []), { anchors: ['10.101.0.0'], add: ['10.101.0.0'], remove: [] });
  // present and ours: nothing to do
  const withAnchor = [...host, { ip: '10.101.0.0', dev: 'lo' }];
  assert.equal(planAnchors(cidrs, withAnchor, ['10.101.0.0']), { anchors: ['10.101.0.0'], add: [], remove: [] });
  // ours but lost (someone removed it): added again
  assert.equal(planAnchors(cidrs, host, ['10.101.0.0']), { anchors: ['10.101.0.0'], add: ['10.101.0.0'], remove: [] });
  // the host got an address of its own there: ours stays (charon's routes may use it)
  assert.equal(planAnchors(cidrs, [...withAnchor, { ip: '10.101.9.9', dev: 'eth1' }], ['10.101.0.0']).remove, []);
  // the CIDR is no longer local: ours goes; someone else's address in a CIDR counts as the host's own
  assert.equal(planAnchors(['10.1.0.0/16'], withAnchor, ['10.101.0.0']), { anchors: [], add: [], remove: ['10.101.0.0'] });
  assert.equal(planAnchors(cidrs, withAnchor, []), { anchors: [], add: [], remove: [] });
  // no address anywhere: one anchor per CIDR
  assert.equal(planAnchors(cidrs, [], []).add, ['10.1.0.0', '10.101.0.0']);
});

test('preferredSource: the host\'s own address in the first local CIDR that has one, an anchor only when there is none', () => {
  const cidrs = ['10.1.0.0/16', '10.101.0.0/16', 'fd00:1::/64'];
  const anchors = ['10.101.0.0'];
  assert.is(preferredSource(cidrs, [{ ip: '10.101.0.0', dev: 'lo' }, { ip: '10.1.0.1', dev: 'cni0' }], anchors, 4), '10.1.0.1');
  assert.is(preferredSource(cidrs, [{ ip: '10.101.0.0', dev: 'lo' }, { ip: '10.101.3.3', dev: 'x' }], anchors, 4), '10.101.3.3');
  assert.is(preferredSource(cidrs, [{ ip: '10.101.0.0', dev: 'lo' }], anchors, 4), '10.101.0.0');
  assert.is(preferredSource(cidrs, [{ ip: 'fd00:1::7', dev: 'x' }], anchors, 6), 'fd00:1::7');
  assert.is(preferredSource(['10.1.0.0/16'], [], [], 6), undefined);
});

test('parseRoutes, planRoutes, hasTableRule: replace what is missing or different, delete what is not wanted', () => {
  const have = parseRoutes(JSON.stringify([
    { dst: '10.2.0.0/16', dev: 'ipsec0', protocol: 'static', prefsrc: '10.1.0.1' },
    { dst: '10.102.0.0/16', dev: 'ipsec0', protocol: 'static', prefsrc: '10.101.0.0' },
    { dst: '10.9.0.1', dev: 'ipsec0' },
    { dst: 'default', dev: 'eth0' },
  ]));
  assert.equal(have, [
    { dst: '10.2.0.0/16', dev: 'ipsec0', src: '10.1.0.1' },
    { dst: '10.102.0.0/16', dev: 'ipsec0', src: '10.101.0.0' },
    { dst: '10.9.0.1/32', dev: 'ipsec0', src: undefined },
  ]);
  const want = new Map([['10.2.0.0/16', '10.1.0.1'], ['10.102.0.0/16', '10.1.0.1'], ['10.3.0.0/16', '10.1.0.1']]);
  assert.equal(planRoutes(want, have), { replace: ['10.102.0.0/16', '10.3.0.0/16'], remove: ['10.9.0.1/32'] });
  assert.equal(planRoutes(new Map([['10.2.0.0/16', '10.1.0.1']]), [{ dst: '10.2.0.0/16', dev: 'eth0', src: '10.1.0.1' }]).replace, ['10.2.0.0/16']);
  assert.equal(planRoutes(new Map(), []), { replace: [], remove: [] });
  assert.equal(parseRoutes('garbage'), []);
  assert.ok(hasTableRule('[{"priority":0,"src":"all","table":"local"},{"priority":219,"src":"all","table":"219"}]', 219, 219));
  assert.not.ok(hasTableRule('[{"priority":219,"src":"10.0.0.0/8","table":"219"}]', 219, 219));
  assert.not.ok(hasTableRule('[{"priority":220,"src":"all","table":"220"}]', 219, 219));
  assert.not.ok(hasTableRule('', 219, 219));
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
    assert.is(errorCode(() => new Charon({ runner, logger: silentLogger(), dir: `/tmp/${'x'.repeat(120)}` })), ErrorCodes.INVALID_CONFIG);
    assert.is(errorCode(() => new Charon({ runner, logger: silentLogger(), dir, port: 4500, portNatT: 4500 })), ErrorCodes.INVALID_CONFIG);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IpsecDriver: set() before init() is FAILED_PRECONDITION; init() refuses bad local endpoints', async () => {
  const d = new IpsecDriver({ runner: new FakeRunner(), logger: silentLogger(), dir: '/tmp/unused-ipsec' });
  assert.is(await errorCodeAsync(d.set([])), ErrorCodes.FAILED_PRECONDITION);
  assert.is(await errorCodeAsync(d.init({ ...local({ psk: 'p'.repeat(40) }), clusterId: 'Bad' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(d.init({ ...local({ psk: 'p'.repeat(40) }), cidrs: [] })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(d.init(local({}))), ErrorCodes.BAD_CREDENTIALS);
});

test('IpsecDriver: charon not installed is MISSING_DEPENDENCY at init, naming the package', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'istd-'));
  try {
    const runner = new FakeRunner();
    const d = new IpsecDriver({ runner, logger: silentLogger(), dir, charonPath: '/nonexistent/charon', dataPath: 'libipsec' });
    assert.is(await errorCodeAsync(d.preflight()), ErrorCodes.MISSING_DEPENDENCY, 'preflight says so before init');
    const plugins = pluginFolder(charonPlugins('libipsec'));
    try {
      await new IpsecDriver({ runner, logger: silentLogger(), dir, charonPath: process.execPath, dataPath: 'libipsec', pluginDir: plugins }).preflight();
    } finally {
      rmSync(plugins, { recursive: true, force: true });
    }
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

/** A folder with a libstrongswan-NAME.so file (empty) per plugin name, as Debian lays them out. */
function pluginFolder(names: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'istp-'));
  for (const n of names) writeFileSync(join(dir, `libstrongswan-${n}.so`), '');
  writeFileSync(join(dir, 'README'), 'not a plugin');
  return dir;
}

test('missingPluginsError: names each missing plugin and the Debian package that ships it; undefined when none is missing', () => {
  const needed = charonPlugins('xfrm');
  for (const p of [...needed, ...charonPlugins('libipsec')]) assert.ok(PLUGIN_PACKAGE[p] !== undefined, `${p} has a package`);
  assert.is(missingPluginsError(needed, needed, 'loaded'), undefined);
  // what charon 5.9 loaded on a machine without libstrongswan-standard-plugins (its VICI stats)
  const loaded = ['charon', 'random', 'nonce', 'aes', 'sha1', 'sha2', 'hmac', 'kdf', 'pem', 'pkcs1', 'pkcs8', 'x509', 'pubkey', 'constraints', 'kernel-netlink', 'socket-default', 'vici'];
  const err = missingPluginsError(needed, loaded, 'loaded');
  assert.is(err?.code, ErrorCodes.MISSING_DEPENDENCY);
  assert.match(err?.message ?? '', 'openssl, gcm');
  assert.match(err?.message ?? '', 'install the Debian package libstrongswan-standard-plugins');
  assert.match(err?.message ?? '', 'did not load');
  assert.equal(err?.context, { plugins: ['openssl', 'gcm'], packages: ['libstrongswan-standard-plugins'] });
  const two = missingPluginsError(charonPlugins('libipsec'), loaded.filter((p) => p !== 'x509'), 'installed', '/x/plugins');
  assert.match(two?.message ?? '', 'kernel-libipsec, openssl, gcm, x509');
  assert.match(two?.message ?? '', 'packages libcharon-extra-plugins libstrongswan libstrongswan-standard-plugins');
  assert.match(two?.message ?? '', 'not installed in /x/plugins');
  assert.is(missingPluginsError(['x509'], [], 'loaded')?.message.includes('plugin x509 that'), true, 'one plugin: singular');
});

test('IpsecDriver.preflight: every plugin the driver loads must be installed; a missing one is MISSING_DEPENDENCY naming its package', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'istd-'));
  const full = pluginFolder(charonPlugins('libipsec'));
  const noStandard = pluginFolder(charonPlugins('libipsec').filter((p) => PLUGIN_PACKAGE[p] !== 'libstrongswan-standard-plugins'));
  try {
    assert.equal((await installedPlugins(full)).sort(), [...charonPlugins('libipsec')].sort(), 'README is not a plugin');
    assert.equal(await installedPlugins(join(dir, 'none')), [], 'a missing folder has no plugins');
    const runner = new FakeRunner();
    const driver = (pluginDir: string, dataPath: 'xfrm' | 'libipsec' | 'auto'): IpsecDriver =>
      new IpsecDriver({ runner, logger: silentLogger(), dir, charonPath: process.execPath, dataPath, pluginDir });
    await driver(full, 'libipsec').preflight();
    await driver(full, 'auto').preflight();
    for (const dataPath of ['xfrm', 'libipsec', 'auto'] as const) {
      const err = await driver(noStandard, dataPath).preflight().then(() => undefined, (e: unknown) => e as IsthmusError);
      assert.is(err?.code, ErrorCodes.MISSING_DEPENDENCY, dataPath);
      assert.match(err?.message ?? '', 'openssl, gcm');
      assert.match(err?.message ?? '', 'libstrongswan-standard-plugins');
    }
    const noLibipsec = pluginFolder(charonPlugins('xfrm'));
    try {
      await driver(noLibipsec, 'xfrm').preflight();
      assert.match((await errorMessage(driver(noLibipsec, 'libipsec').preflight())), 'libcharon-extra-plugins');
    } finally {
      rmSync(noLibipsec, { recursive: true, force: true });
    }
    assert.equal(runner.calls, [], 'preflight runs nothing');
  } finally {
    for (const d of [dir, full, noStandard]) rmSync(d, { recursive: true, force: true });
  }
});

async function errorMessage(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'no error', (e: unknown) => (e as Error).message);
}

// ---- the driver against a fake charon: a process named "charon" (a copy of sleep) whose
// pid file and VICI socket are in the driver's folder, the socket served by this test ----

interface FakeCharon {
  readonly dir: string;
  readonly log: string[];
  readonly conns: Map<string, ViciMessage>;
  readonly up: Set<string>;
  /** Breaks every VICI connection, as when charon dies (its process stays: the driver adopts it again). */
  dropClients(): void;
  stop(): Promise<void>;
}

async function fakeCharon(): Promise<FakeCharon> {
  const dir = mkdtempSync(join(tmpdir(), 'istf-'));
  copyFileSync('/bin/sleep', join(dir, 'charon'));
  const proc: ChildProcess = spawn(join(dir, 'charon'), ['300'], { stdio: 'ignore' });
  writeFileSync(join(dir, 'charon.pid'), `${proc.pid}\n`);
  writeFileSync(join(dir, 'strongswan.conf'), 'load = kernel-libipsec vici\n');
  const log: string[] = [];
  const conns = new Map<string, ViciMessage>();
  const up = new Set<string>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    const reader = new SegmentReader();
    const send = (p: Packet): boolean => sock.write(encodePacket(p));
    const ok = (): boolean => send({ type: PacketType.CMD_RESPONSE, message: { success: 'yes' } });
    sock.on('data', (chunk: Buffer) => {
      for (const body of reader.push(chunk)) {
        const p = decodePacket(body);
        if (p.type === PacketType.EVENT_REGISTER || p.type === PacketType.EVENT_UNREGISTER) {
          send({ type: PacketType.EVENT_CONFIRM });
          continue;
        }
        const m = p.message ?? {};
        switch (p.name) {
          case 'version':
            send({ type: PacketType.CMD_RESPONSE, message: { daemon: 'charon' } });
            break;
          case 'stats':
            send({ type: PacketType.CMD_RESPONSE, message: { plugins: ['charon', 'kernel-libipsec', 'vici'] } });
            break;
          case 'load-shared':
          case 'load-cert':
          case 'load-key':
          case 'clear-creds':
            log.push(p.name);
            ok();
            break;
          case 'get-conns':
            send({ type: PacketType.CMD_RESPONSE, message: { conns: [...conns.keys()] } });
            break;
          case 'load-conn': {
            const name = Object.keys(m)[0] ?? '';
            log.push(`load-conn ${name}`);
            if (name.includes('bad')) send({ type: PacketType.CMD_RESPONSE, message: { success: 'no', errmsg: `invalid configuration for ${name}` } });
            else {
              conns.set(name, m);
              ok();
            }
            break;
          }
          case 'unload-conn':
            log.push(`unload-conn ${String(m['name'])}`);
            conns.delete(String(m['name']));
            ok();
            break;
          case 'terminate':
            log.push(`terminate ${String(m['ike'])}${m['force'] === 'yes' ? ' by force' : ''}`);
            up.delete(String(m['ike']));
            ok();
            break;
          case 'initiate':
            log.push(`initiate ${String(m['ike'])}`);
            up.add(String(m['ike']));
            ok();
            break;
          case 'list-sas': {
            for (const name of up) {
              if (m['ike'] !== undefined && m['ike'] !== name) continue;
              send({ type: PacketType.EVENT, name: 'list-sa', message: { [name]: { uniqueid: '1', state: 'ESTABLISHED', established: '3', 'child-sas': { c: { state: 'INSTALLED', 'bytes-in': '10', 'bytes-out': '20' } } } } });
            }
            send({ type: PacketType.CMD_RESPONSE, message: {} });
            break;
          }
          default:
            send({ type: PacketType.CMD_UNKNOWN });
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(join(dir, 'charon.vici'), r));
  return {
    dir, log, conns, up,
    dropClients: () => {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    stop: async () => {
      proc.kill('SIGKILL');
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('Charon.loadedPlugins: the plugin list of VICI stats', async () => {
  const fake = await fakeCharon();
  try {
    const plugins = await new Charon({ runner: new FakeRunner(), logger: silentLogger(), dir: fake.dir }).loadedPlugins();
    assert.equal(plugins, ['charon', 'kernel-libipsec', 'vici']);
    assert.match(missingPluginsError(charonPlugins('libipsec'), plugins, 'loaded')?.message ?? '', 'libstrongswan-standard-plugins');
  } finally {
    await fake.stop();
  }
});

async function eventually<T>(f: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('condition not met in 5 s');
}

test('IpsecDriver on a fake charon: adopts, adds before it deletes, set() twice changes nothing, a bad cable fails alone, state holds no secret', async () => {
  const fake = await fakeCharon();
  const psk = 'unit-test-psk-'.repeat(4);
  const runner = new FakeRunner();
  const d = new IpsecDriver({ runner, logger: silentLogger(), dir: fake.dir, autoRestart: false, retryMinMs: 20 });
  try {
    await d.init({ ...local({ psk }), privateIp: '192.0.2.1' });
    assert.is(d.charonStarts, 0, 'adopted the running "charon"');
    assert.equal(fake.log, ['clear-creds', 'load-shared'], 'an adopted charon gets our credentials afresh');
    const b = spec();
    const c = spec({ remoteCluster: 'c', remoteIp: '192.0.2.3', remoteCidrs: ['10.3.0.0/16'] });
    assert.equal(await d.set([b, c]), { failed: [] });
    assert.equal(fake.log.filter((l) => l.startsWith('load-conn')), ['load-conn isthmus-b', 'load-conn isthmus-c']);
    // a (lowest id) initiates both
    await eventually(async () => (fake.up.has('isthmus-b') && fake.up.has('isthmus-c') ? true : undefined));
    const st = await d.connections();
    assert.equal(st.map((x) => [x.remoteCluster, x.state, x.rxBytes, x.txBytes]), [['b', 'connected', 10, 20], ['c', 'connected', 10, 20]]);
    // the same input again: nothing sent that changes charon
    const mark = fake.log.length;
    assert.equal(await d.set([c, b]), { failed: [] });
    assert.equal(fake.log.slice(mark).filter((l) => !l.startsWith('initiate')), []);
    // b changes, bad is refused by charon, x is refused by validation, c goes: loads first, then the removal
    const mark2 = fake.log.length;
    const b2 = spec({ remoteCidrs: ['10.2.0.0/16', '10.20.0.0/16'] });
    const r = await d.set([b2, spec({ remoteCluster: 'bad', remoteIp: '192.0.2.9' }), spec({ remoteCluster: 'x', remoteIp: 'nope' })]);
    assert.equal(r.failed.map((f) => f.remoteCluster).sort(), ['bad', 'x']);
    assert.match(r.failed.find((f) => f.remoteCluster === 'bad')?.reason ?? '', 'invalid configuration for isthmus-bad');
    const changes = fake.log.slice(mark2).filter((l) => !l.startsWith('initiate'));
    assert.equal(changes, ['load-conn isthmus-b', 'terminate isthmus-b by force', 'load-conn isthmus-bad', 'terminate isthmus-c by force', 'unload-conn isthmus-c']);
    const st2 = await eventually(async () => {
      const s2 = await d.connections();
      return s2.find((x) => x.remoteCluster === 'b')?.state === 'connected' ? s2 : undefined;
    });
    assert.equal(st2.map((x) => [x.remoteCluster, x.state]), [['b', 'connected'], ['bad', 'error'], ['x', 'error']]);
    assert.equal([...fake.conns.keys()], ['isthmus-b']);
    // the state file lists the cables and holds no secret
    const state = readFileSync(join(fake.dir, 'state.json'), 'utf8');
    assert.ok(state.includes('10.20.0.0/16'));
    assert.not.ok(state.includes('unit-test-psk'));
    // outside VICI only the libipsec anchors and routes (tested below) touched the OS
    assert.equal([...new Set(runner.calls.map((x) => x.command))].sort(), ['ip', 'readlink']);
    // a new instance reads the state back and, with the connection loaded, changes nothing
    await d.close();
    const d2 = new IpsecDriver({ runner, logger: silentLogger(), dir: fake.dir, autoRestart: false, retryMinMs: 20 });
    await d2.init({ ...local({ psk }), privateIp: '192.0.2.1' });
    const mark3 = fake.log.length;
    assert.equal(await d2.set([b2]), { failed: [] });
    assert.equal(fake.log.slice(mark3).filter((l) => l !== 'load-shared' && l !== 'clear-creds' && !l.startsWith('initiate')), []);
    // init() again with the same secrets loads nothing; with new ones it replaces them
    const mark4 = fake.log.length;
    await d2.init({ ...local({ psk }), privateIp: '192.0.2.1' });
    assert.equal(fake.log.slice(mark4).filter((l) => !l.startsWith('initiate')), []);
    await d2.init({ ...local({ psk: `${psk}-rotated` }), privateIp: '192.0.2.1' });
    assert.equal(fake.log.slice(mark4).filter((l) => !l.startsWith('initiate')), ['clear-creds', 'load-shared']);
    // a refused new spec keeps the cable on its previous one, and says so
    const mark5 = fake.log.length;
    const r5 = await d2.set([{ ...b2, remoteIp: 'nope' }]);
    assert.equal(r5.failed.map((f) => f.remoteCluster), ['b']);
    assert.equal(fake.log.slice(mark5).filter((l) => !l.startsWith('initiate')), []);
    assert.ok(fake.conns.has('isthmus-b'));
    const st5 = await d2.connections();
    assert.is(st5.length, 1);
    assert.is(st5[0]?.state, 'error');
    assert.match(st5[0]?.message ?? '', 'the new spec was refused (remote address "nope" is not an IP address); the previous one is still connected');
    assert.equal(await d2.set([b2]), { failed: [] });
    assert.is((await d2.connections())[0]?.state, 'connected');
    await d2.close();
  } finally {
    await d.close();
    await fake.stop();
  }
});

/**
 * A model of the `ip` commands the driver runs on the libipsec data path, for one
 * namespace: addresses, rules and the routes of table 219. A route needs ipsec0 and a
 * source the host holds, as in the kernel.
 */
class FakeIp {
  readonly addrs = new Map<string, string>([['10.1.0.1', 'cni0'], ['192.0.2.1', 'eth0']]);
  readonly rules = new Set<string>();
  routes = new Map<string, string | undefined>();
  tableExists = false;
  /** Destinations whose `ip route replace` fails. */
  readonly refuse = new Set<string>();

  handle = (c: FakeCall): Partial<RunResult> | undefined => {
    if (c.command !== 'ip') return undefined;
    if (c.args.join(' ') === '-force -batch -') {
      // each stdin line as its own command, failures reported as iproute2 does
      let stderr = '';
      (c.options.input ?? '').split('\n').filter((l) => l !== '').forEach((l, i) => {
        const r = this.handle({ command: 'ip', args: l.split(' '), options: {} });
        if ((r?.code ?? 0) !== 0) stderr += `${r?.stderr ?? ''}\nCommand failed -:${String(i + 1)}\n`;
      });
      return stderr === '' ? {} : { code: 1, stderr };
    }
    const a = c.args.filter((x) => x !== '-4');
    const ok = { code: 0, stdout: '', stderr: '' };
    const is = (...p: string[]): boolean => p.every((x, i) => a[i] === x);
    if (is('-j', 'address', 'show')) {
      const devs = [...new Set(this.addrs.values())];
      return { stdout: JSON.stringify(devs.map((d) => ({ ifname: d, flags: ['UP'], addr_info: [...this.addrs].filter(([, x]) => x === d).map(([ip]) => ({ family: 'inet', local: ip, scope: 'global' })) }))) };
    }
    if (is('address', 'add')) {
      this.addrs.set((a[2] ?? '').split('/')[0] ?? '', a[4] ?? '');
      return ok;
    }
    if (is('address', 'del')) {
      this.addrs.delete((a[2] ?? '').split('/')[0] ?? '');
      return ok;
    }
    if (is('-j', 'rule', 'show')) return { stdout: JSON.stringify([...this.rules].map((r) => ({ priority: Number(r), src: 'all', table: r }))) };
    if (is('rule', 'add')) {
      this.rules.add(a[3] ?? '');
      return ok;
    }
    if (is('rule', 'del')) return this.rules.delete(a[3] ?? '') ? ok : { code: 2, stderr: 'RTNETLINK answers: No such file or directory' };
    if (is('-j', 'route', 'show', 'table', '219')) {
      if (!this.tableExists) return { code: 2, stderr: 'Error: ipv4: FIB table does not exist.\nDump terminated' };
      return { stdout: JSON.stringify([...this.routes].map(([dst, src]) => ({ dst, dev: 'ipsec0', protocol: 'static', ...(src === undefined ? {} : { prefsrc: src }) }))) };
    }
    if (is('route', 'replace')) {
      const dst = a[2] ?? '';
      const src = a[a.indexOf('src') + 1];
      if (this.refuse.has(dst)) return { code: 2, stderr: 'RTNETLINK answers: Invalid argument' };
      if (src !== undefined && !this.addrs.has(src)) return { code: 2, stderr: 'Error: Invalid prefsrc address.' };
      this.routes.set(dst, src);
      this.tableExists = true;
      return ok;
    }
    if (is('route', 'del')) return this.routes.delete(a[2] ?? '') ? ok : { code: 2, stderr: 'RTNETLINK answers: No such process' };
    if (is('route', 'flush')) {
      this.routes.clear();
      return ok;
    }
    if (c.args[0] === '-6') return { code: 2, stderr: 'not modelled' };
    return { code: 99, stderr: `unexpected: ip ${c.args.join(' ')}` };
  };

  /** charon restarted: a new ipsec0, without routes. */
  newTun(): void {
    this.routes = new Map();
  }
}

/** The commands that change the OS (everything but reads); a batch as `ip -batch [line; line; …]`. */
function changes(runner: FakeRunner, from = 0): string[] {
  return runner.calls.slice(from).filter((c) => c.command !== 'readlink' && !c.args.includes('-j'))
    .map((c) => (c.args.join(' ') === '-force -batch -' ? `${c.command} -batch [${(c.options.input ?? '').trim().split('\n').join('; ')}]` : [c.command, ...c.args].join(' ')));
}

test('IpsecDriver on libipsec: anchors for CIDRs without a host address, routes per remote CIDR with the host\'s own source, idempotent, removed with their cable, restored after a charon restart, cleaned up', async () => {
  const fake = await fakeCharon();
  const ip = new FakeIp();
  const runner = new FakeRunner().on(ip.handle);
  const psk = 'unit-test-psk-'.repeat(4);
  const l = { ...local({ psk }), cidrs: ['10.1.0.0/16', '10.101.0.0/16'] };
  const opts = { runner, logger: silentLogger(), dir: fake.dir, retryMinMs: 20, autoRestartDelayMs: 10 };
  const d = new IpsecDriver(opts);
  try {
    await d.init(l);
    // the host holds 10.1.0.1 but nothing in the service CIDR: an anchor, and no route yet
    assert.equal(changes(runner), ['ip address add 10.101.0.0/32 dev lo']);
    assert.equal(JSON.parse(readFileSync(join(fake.dir, 'state.json'), 'utf8')).anchors, ['10.101.0.0']);
    const b = spec({ remoteCidrs: ['10.2.0.0/16', '10.102.0.0/16'] });
    const c = spec({ remoteCluster: 'c', remoteIp: '192.0.2.3', remoteCidrs: ['10.3.0.0/16', '10.103.0.0/16'] });
    let mark = runner.calls.length;
    assert.equal(await d.set([b, c]), { failed: [] });
    assert.equal(changes(runner, mark), [
      'ip -4 rule add priority 219 table 219',
      `ip -batch [${['10.2.0.0/16', '10.102.0.0/16', '10.3.0.0/16', '10.103.0.0/16'].map((r) => `route replace ${r} dev ipsec0 table 219 proto static src 10.1.0.1`).join('; ')}]`,
    ], 'every route in one ip -batch');
    // the same input again: only reads
    mark = runner.calls.length;
    assert.equal(await d.set([c, b]), { failed: [] });
    assert.equal(changes(runner, mark), []);
    assert.ok(runner.calls.slice(mark).some((x) => x.args.join(' ') === '-j -4 route show table 219'), 'it looked');
    // c goes and d comes: d's routes go in before c's go out; a source that changed behind our back is put right
    ip.routes.set('10.2.0.0/16', '10.101.0.0');
    const dd = spec({ remoteCluster: 'd', remoteIp: '192.0.2.4', remoteCidrs: ['10.4.0.0/16', '192.0.2.0/24'] });
    mark = runner.calls.length;
    assert.equal(await d.set([b, dd]), { failed: [] });
    assert.equal(changes(runner, mark), [
      'ip -batch [route replace 10.2.0.0/16 dev ipsec0 table 219 proto static src 10.1.0.1; route replace 10.4.0.0/16 dev ipsec0 table 219 proto static src 10.1.0.1]',
      'ip -batch [route del 10.3.0.0/16 table 219; route del 10.103.0.0/16 table 219]',
    ], 'no route to 192.0.2.0/24: it holds d\'s own address (charon excludes the peer, we would not)');
    assert.equal([...ip.routes.keys()].sort(), ['10.102.0.0/16', '10.2.0.0/16', '10.4.0.0/16']);
    // a route the kernel refuses fails its own cable only
    ip.refuse.add('10.4.0.0/16');
    ip.routes.delete('10.4.0.0/16');
    ip.routes.delete('10.2.0.0/16');
    const r = await d.set([b, dd]);
    assert.equal(r.failed.map((f) => f.remoteCluster), ['d']);
    assert.match(r.failed[0]?.reason ?? '', 'route to 10.4.0.0/16 via ipsec0');
    assert.ok(ip.routes.has('10.2.0.0/16'), 'b repaired all the same');
    ip.refuse.clear();
    assert.equal(await d.set([b, dd]), { failed: [] });
    // charon dies and comes back (here: the VICI connections break, the driver reconnects): a new ipsec0, routes restored
    ip.newTun();
    fake.dropClients();
    await eventually(async () => (ip.routes.size === 3 ? true : undefined));
    assert.is(ip.routes.get('10.102.0.0/16'), '10.1.0.1');
    // and through init(), as after a failed restart
    ip.newTun();
    await d.init(l);
    assert.equal([...ip.routes.keys()].sort(), ['10.102.0.0/16', '10.2.0.0/16', '10.4.0.0/16']);
    // the anchor lost (someone flushed lo): set() puts it back before anything else
    ip.addrs.delete('10.101.0.0');
    mark = runner.calls.length;
    assert.equal(await d.set([b, dd]), { failed: [] });
    assert.equal(changes(runner, mark), ['ip address add 10.101.0.0/32 dev lo']);
    // a new instance adopts: nothing changes, and its cleanup removes what the first one made
    await d.close();
    const d2 = new IpsecDriver({ ...opts, autoRestart: false });
    mark = runner.calls.length;
    await d2.init(l);
    assert.equal(await d2.set([b, dd]), { failed: [] });
    assert.equal(changes(runner, mark), []);
    await d2.cleanup();
    assert.equal([...ip.routes.keys()], []);
    assert.equal([...ip.rules], []);
    assert.not.ok(ip.addrs.has('10.101.0.0'), 'anchor removed');
    assert.ok(ip.addrs.has('10.1.0.1'), 'the host\'s own address stays');
  } finally {
    await d.close();
    await fake.stop();
  }
});

test.run();
