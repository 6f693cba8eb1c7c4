import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ClustersetRoles, ErrorCodes, IsthmusError, certificateInfo, keyMatchesCertificate } from '../core/index.ts';
import {
  CA_BUNDLE_FILE, CA_CERT_FILE, CA_KEY_FILE, TLS_CERT_FILE, TLS_KEY_FILE, createClustersetCA, decodeWireGuardKey,
  generateIpsecPsk, generateWireGuardKeyPair, generateWireGuardPresharedKey, identityOf, issueFor, issueIpsecCredentials,
  loadClustersetCA, pruneBundle, readIssued, renewDir, renewalDue, renewalTime, rotateClustersetCA, splitPemBundle,
  validateClusterId, validateIpsecPsk, verifyWithBundle, wireGuardPublicKey, writeClustersetCA, writeIssued,
} from './index.ts';
import { errorCode } from '../core/testing.ts';

const DAY = 86_400_000;
const ca = createClustersetCA({ validDays: 100 });

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-certs-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

const codeOf = (fn: () => unknown): string => errorCode(fn) ?? 'no error';

test('CA is written with a 0600 key, loaded back, and not silently replaced', async () => {
  await withDir(async (dir) => {
    await writeClustersetCA(dir, ca);
    assert.is(await mode(join(dir, CA_KEY_FILE)), 0o600);
    assert.is(await mode(join(dir, CA_CERT_FILE)), 0o644);
    assert.equal((await readdir(dir)).sort(), [CA_BUNDLE_FILE, CA_CERT_FILE, CA_KEY_FILE].sort());
    const back = await loadClustersetCA(dir);
    assert.is(back.certPem, ca.certPem);
    assert.is(back.keyPem, ca.keyPem);
    try {
      await writeClustersetCA(dir, createClustersetCA({ validDays: 1 }));
      assert.unreachable('overwrote a CA');
    } catch (err) {
      assert.is((err as IsthmusError).code, ErrorCodes.ALREADY_EXISTS);
    }
  });
});

test('loading a CA whose key does not match, or a missing CA, fails clearly', async () => {
  await withDir(async (dir) => {
    const other = createClustersetCA({ validDays: 1 });
    await writeClustersetCA(dir, { ...ca, keyPem: other.keyPem });
    await loadClustersetCA(dir).then(() => assert.unreachable(), (err: IsthmusError) => {
      assert.is(err.code, ErrorCodes.BAD_CREDENTIALS);
      assert.match(err.message, /is not the key of/);
    });
  });
  await loadClustersetCA('/nonexistent-isthmus-dir').then(() => assert.unreachable(), (err: IsthmusError) => {
    assert.is(err.code, ErrorCodes.NOT_FOUND);
    assert.match(err.message, /isthmus certs ca create/);
  });
});

test('each role gets its CN, O, usages and SANs, and identityOf reads them back', () => {
  const cluster = issueFor(ca, { role: 'cluster', clusterId: 'east-1' });
  const admin = issueFor(ca, { role: 'admin' });
  const broker = issueFor(ca, { role: 'broker', sans: ['broker.example.com,127.0.0.1', '::1'] });
  const gw = issueFor(ca, { role: 'gateway', clusterId: 'east-1', gateway: 'node-a' });
  assert.equal({ cn: certificateInfo(cluster.certPem).commonName, o: certificateInfo(cluster.certPem).organizations }, { cn: 'east-1', o: [ClustersetRoles.cluster] });
  assert.equal(certificateInfo(admin.certPem).organizations, [ClustersetRoles.admin]);
  const b = certificateInfo(broker.certPem);
  assert.equal([b.dnsNames, b.ipAddresses], [['broker.example.com'], ['127.0.0.1', '::1']]);
  assert.equal(identityOf(cluster.certPem), { role: 'cluster', clusterId: 'east-1' });
  assert.equal(identityOf(admin.certPem), { role: 'admin' });
  assert.equal(identityOf(broker.certPem), { role: 'broker', sans: ['broker.example.com', '127.0.0.1', '::1'] });
  assert.equal(identityOf(gw.certPem), { role: 'gateway', clusterId: 'east-1', gateway: 'node-a' });
  for (const c of [cluster, admin, broker, gw]) verifyWithBundle(c.certPem, ca.bundlePem);
  const days = (certificateInfo(cluster.certPem).notAfter.getTime() - Date.now()) / DAY;
  assert.ok(days > 89 && days <= 90, `the default lifetime is 90 days, got ${days}`);
  const long = issueFor(ca, { role: 'cluster', clusterId: 'east-1' }, { validDays: 365 });
  const longDays = (certificateInfo(long.certPem).notAfter.getTime() - Date.now()) / DAY;
  assert.ok(longDays > 99 && longDays <= 100, `capped at the CA lifetime, got ${longDays}`);
});

test('bad identities are refused', () => {
  assert.is(codeOf(() => issueFor(ca, { role: 'cluster', clusterId: 'East_1' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(codeOf(() => issueFor(ca, { role: 'broker', sans: [] })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(codeOf(() => validateClusterId('a'.repeat(64))), ErrorCodes.INVALID_ARGUMENT);
  assert.is(codeOf(() => validateClusterId('-x')), ErrorCodes.INVALID_ARGUMENT);
  assert.is(validateClusterId('c1'), 'c1');
});

test('issued files: key 0600, ca.crt is the bundle', async () => {
  await withDir(async (dir) => {
    const issued = issueFor(ca, { role: 'cluster', clusterId: 'c1' });
    await writeIssued(dir, issued, ca);
    assert.is(await mode(join(dir, TLS_KEY_FILE)), 0o600);
    const back = await readIssued(dir);
    assert.is(back.certPem, issued.certPem);
    assert.is(back.caPem, ca.bundlePem);
    assert.ok(keyMatchesCertificate(back.keyPem, back.certPem));
  });
});

test('renewal is due after two thirds of the lifetime', () => {
  const c = issueFor(ca, { role: 'cluster', clusterId: 'c1' }, { validDays: 30, notBefore: new Date(Date.now() - 10 * DAY) });
  const info = certificateInfo(c.certPem);
  assert.is(renewalTime(c.certPem).getTime(), info.notBefore.getTime() + (info.notAfter.getTime() - info.notBefore.getTime()) * 2 / 3, 'renewal at 2/3');
  assert.is(info.notAfter.getTime() - info.notBefore.getTime(), 30 * DAY);
  assert.not.ok(renewalDue(c.certPem));
  assert.ok(renewalDue(c.certPem, new Date(Date.now() + 11 * DAY)));
  assert.ok(renewalDue(c.certPem, new Date(), { fraction: 0.25 }));
});

test('renewDir renews when due, keeps the identity, and leaves a valid certificate in place otherwise', async () => {
  await withDir(async (dir) => {
    const old = issueFor(ca, { role: 'gateway', clusterId: 'c2', gateway: 'gw1' }, { validDays: 30, notBefore: new Date(Date.now() - 25 * DAY) });
    await writeIssued(dir, old, ca);
    const notDue = await renewDir(dir, ca, { now: new Date(Date.now() - 15 * DAY) });
    assert.not.ok(notDue.renewed);
    assert.is((await readIssued(dir)).certPem, old.certPem);
    const r = await renewDir(dir, ca);
    assert.ok(r.renewed, r.reason);
    const now = await readIssued(dir);
    assert.is.not(now.certPem, old.certPem);
    assert.equal(identityOf(now.certPem), { role: 'gateway', clusterId: 'c2', gateway: 'gw1' });
    assert.ok(keyMatchesCertificate(now.keyPem, now.certPem));
    // overlap: the old certificate is still valid while the new one is rolled out
    verifyWithBundle(old.certPem, ca.bundlePem);
    verifyWithBundle(now.certPem, ca.bundlePem);
  });
});

test('CA rotation keeps trust in the old CA until leaves are re-issued', async () => {
  await withDir(async (dir) => {
    const leaf = issueFor(ca, { role: 'cluster', clusterId: 'c3' });
    await writeIssued(dir, leaf, ca);
    const next = rotateClustersetCA(ca);
    assert.is(splitPemBundle(next.bundlePem).length, 2);
    verifyWithBundle(leaf.certPem, next.bundlePem); // old leaf still trusted
    const r = await renewDir(dir, next);
    assert.ok(r.renewed);
    assert.is(r.reason, 'issued by a previous CA');
    const now = await readIssued(dir);
    verifyWithBundle(now.certPem, next.bundlePem);
    assert.is(codeOf(() => verifyWithBundle(now.certPem, ca.bundlePem)), ErrorCodes.BAD_CREDENTIALS);
    assert.is(now.caPem, next.bundlePem);
    // once the old CA has expired it drops out of the bundle
    assert.is(splitPemBundle(pruneBundle(next.bundlePem, new Date(Date.now() + 101 * DAY))).length, 1);
    // rotating again does not duplicate
    assert.is(splitPemBundle(rotateClustersetCA(next).bundlePem).length, 3);
  });
});

test('WireGuard keys: RFC 7748 vector, round trip, same as wg pubkey', () => {
  const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
  assert.is(Buffer.from(wireGuardPublicKey(alice), 'base64').toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  const kp = generateWireGuardKeyPair();
  assert.is(decodeWireGuardKey(kp.privateKey).length, 32);
  assert.is(wireGuardPublicKey(kp.privateKey), kp.publicKey);
  assert.is.not(generateWireGuardKeyPair().privateKey, kp.privateKey);
  assert.is(decodeWireGuardKey(generateWireGuardPresharedKey()).length, 32);
  let wg: string;
  try {
    wg = execFileSync('wg', ['pubkey'], { input: `${kp.privateKey}\n` }).toString().trim();
  } catch (err) {
    throw new Error(`cannot run \`wg pubkey\` to cross-check the keys (${String(err)}): install wireguard-tools (./setup does)`);
  }
  assert.is(wg, kp.publicKey);
  assert.is(codeOf(() => wireGuardPublicKey('short')), ErrorCodes.INVALID_ARGUMENT);
});

test('IPsec: per-gateway certificate by default, PSK as an option', () => {
  const creds = issueIpsecCredentials(ca, 'c1', 'gw-a');
  assert.is(creds.mode, 'certificate');
  if (creds.mode !== 'certificate') return;
  assert.is(creds.identity, 'gw-a.c1');
  verifyWithBundle(creds.certPem, creds.caPem);
  const psk = generateIpsecPsk();
  assert.is(psk.mode, 'psk');
  if (psk.mode !== 'psk') return;
  assert.is(Buffer.from(psk.psk, 'base64').length, 48);
  assert.equal(validateIpsecPsk(psk.psk), psk);
  assert.is(codeOf(() => validateIpsecPsk('c2hvcnQ=')), ErrorCodes.INVALID_ARGUMENT);
});

test.run();
