// e2e with real etcd and the real broker: the join API. Only the admin mints tokens; a
// token gets exactly one cluster id a certificate for the key it sends (the private key
// stays with the cluster) and registers the cluster; a dry run spends nothing; two joins
// racing with one token: one wins; a retry with the same key gets the certificate again,
// anything else with a spent token is refused; a bound token joins only its id; CIDRs that
// overlap a member are refused naming it; etcd holds the token's hash, never the secret.
import { createPublicKey, X509Certificate } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError, certificateInfo, generateKeyPair, verifyChain } from '../core/index.ts';
import { callJoinApi, parseJoinToken, type GatewayCertificatesResponse, type JoinResponse, type MintTokenResponse } from '../core/broker-api/join.ts';
import { writeClustersetCA } from '../certs/index.ts';
import { JoinServer } from '../broker/join.ts';
import { JOIN_TOKEN_DIR } from '../broker/keys.ts';
import { revoke } from '../broker/revocation.ts';
import { refusal, test, withLab, type Lab } from './broker-harness.ts';


interface JoinLab {
  readonly address: string;
  readonly caPem: string;
  readonly server: JoinServer;
  mint(body?: object): Promise<string>;
  join(token: string, id: string, cidr: string, keyPem?: string, dryRun?: boolean): Promise<JoinResponse & { keyPem: string }>;
}

/** A lab with etcd, a broker and the join API; the join API is stopped however `fn` ends. */
async function withJoin(fn: (j: JoinLab, lab: Lab) => Promise<void>): Promise<void> {
  await withLab(async (lab) => {
    const j = await setup(lab);
    try {
      await fn(j, lab);
    } finally {
      await j.server.stop();
    }
  });
}

async function setup(lab: Lab): Promise<JoinLab> {
  await lab.startEtcd(1);
  await lab.makePki(['c1']);
  await lab.startBroker();
  const caDir = join(lab.dir, 'ca');
  await writeClustersetCA(caDir, lab.ca);
  const server = new JoinServer({ etcdHosts: lab.etcdHosts, listen: '127.0.0.1:0', tlsDir: join(lab.pki, 'broker'), caDir, logger: lab.logger });
  await server.start();
  const address = `127.0.0.1:${server.port}`;
  const admin = await lab.tls('admin');
  return {
    address, caPem: lab.ca.bundlePem, server,
    mint: async (body = {}) => (await callJoinApi<MintTokenResponse>({ address, caPem: lab.ca.bundlePem, client: admin }, '/v1/tokens', body)).token,
    join: async (token, id, cidr, keyPem = generateKeyPair().keyPem, dryRun = false) => {
      const publicKeyPem = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
      // services in 10.(100+N)/…: pods 10.4.0.0/16 → services 10.104.0.0/16
      const service = cidr.replace(/^10\.(\d+)\./, (_m, n: string) => `10.${100 + Number(n)}.`);
      const r = await callJoinApi<JoinResponse>({ address, caPem: lab.ca.bundlePem }, '/v1/join', { token, clusterId: id, podCidrs: [cidr], serviceCidrs: [service], publicKeyPem, dryRun });
      return { ...r, keyPem };
    },
  };
}

test('several join API addresses: one that takes no connection hands over to the next; a connected one is final (a request is never sent twice); a refusal is not retried elsewhere', async () => {
  await withJoin(async (j, lab) => {
    const admin = await lab.tls('admin');
    // a port with nothing listening: refused at once
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const deadAddress = `127.0.0.1:${(dead.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const minted = await callJoinApi<MintTokenResponse>({ address: [deadAddress, j.address], caPem: j.caPem, client: admin }, '/v1/tokens', {});
    assert.match(minted.token, /^ijt_/);
    // an address that accepts and never answers: connected, so its timeout is the outcome
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const silentAddress = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const stuck = await refusal(callJoinApi({ address: [silentAddress, j.address], caPem: j.caPem, client: admin, timeoutMs: 500 }, '/v1/tokens', {}));
      assert.is(stuck.code, ErrorCodes.UNAVAILABLE);
      assert.match(stuck.message, new RegExp(`join API at ${silentAddress.replace(/\./g, '\\.')} \\(no answer within 0\\.5 s\\)`));
    } finally {
      silent.close();
    }
    // a refusal (no client certificate) is the broker's answer: not tried on the next address
    const refused = await refusal(callJoinApi({ address: [j.address, deadAddress], caPem: j.caPem }, '/v1/tokens', {}));
    assert.is(refused.code, ErrorCodes.UNAUTHENTICATED);
    // none takes a connection: the last one's error
    const none = await refusal(callJoinApi({ address: [deadAddress, deadAddress], caPem: j.caPem }, '/v1/tokens', {}));
    assert.is(none.code, ErrorCodes.UNAVAILABLE);
    assert.match(none.message, /cannot reach the broker's join API at 127\.0\.0\.1:\d+ \(connect ECONNREFUSED/);
    assert.is((await refusal(callJoinApi({ address: [], caPem: j.caPem }, '/v1/tokens', {}))).code, ErrorCodes.INVALID_ARGUMENT);
  });
});

test('only the clusterset admin mints tokens; etcd holds the hash, not the secret', async () => {
  await withJoin(async (j, lab) => {
    const none = await refusal(callJoinApi({ address: j.address, caPem: j.caPem }, '/v1/tokens', {}));
    assert.is(none.code, ErrorCodes.UNAUTHENTICATED);
    const asCluster = await refusal(callJoinApi({ address: j.address, caPem: j.caPem, client: await lab.tls('c1') }, '/v1/tokens', {}));
    assert.is(asCluster.code, ErrorCodes.PERMISSION_DENIED);
    const token = await j.mint({ ttlSeconds: 600 });
    const { id, secret } = parseJoinToken(token);
    const stored = await lab.etcd().get(JOIN_TOKEN_DIR + id).string();
    assert.ok(stored !== null && !stored.includes(secret));
  });
});

test('a token: one certificate for one new cluster, for the key it sent; the cluster registered; a dry run spends nothing', async () => {
  await withJoin(async (j, lab) => {
    const token = await j.mint();
    const dry = await j.join(token, 'c4', '10.4.0.0/16', undefined, true);
    assert.is(dry.certPem, '');
    const joined = await j.join(token, 'c4', '10.4.0.0/16');
    const info = certificateInfo(joined.certPem);
    assert.is(info.commonName, 'c4');
    assert.equal(info.organizations, ['isthmus:cluster']);
    verifyChain(joined.certPem, lab.ca.certPem);
    assert.is(new X509Certificate(joined.certPem).publicKey.export({ type: 'spki', format: 'pem' }).toString(), createPublicKey(joined.keyPem).export({ type: 'spki', format: 'pem' }).toString());
    assert.equal(joined.members, ['c4']);
    // the certificate works at the broker: c4 reads its own record
    const c4 = lab.client((await lab.startBroker()).port, { caPem: lab.ca.certPem, certPem: joined.certPem, keyPem: joined.keyPem }, { retryForMs: 0 });
    const clusters = (await c4.list(['CLUSTER'])).events.map((e) => e.key);
    assert.equal(clusters, ['c4']);
    // the same join again (cut short after the broker answered): the same key gets a certificate again
    const retry = await j.join(token, 'c4', '10.4.0.0/16', joined.keyPem);
    assert.is(certificateInfo(retry.certPem).commonName, 'c4');
    // anything else with the spent token is refused
    const other = await refusal(j.join(token, 'c5', '10.5.0.0/16'));
    assert.is(other.code, ErrorCodes.BAD_TOKEN);
    assert.match(other.message, /used by cluster c4/);
    const otherKey = await refusal(j.join(token, 'c4', '10.4.0.0/16'));
    assert.is(otherKey.code, ErrorCodes.BAD_TOKEN);
  });
});

test('gateway certificates: a member gets <gateway>.<itself> for its own gateways\' keys only; no certificate, the admin\'s, a gateway\'s, bad names, too many and a revoked member are refused', async () => {
  await withJoin(async (j, lab) => {
    const joined = await j.join(await j.mint(), 'c4', '10.4.0.0/16');
    const c4 = { certPem: joined.certPem, keyPem: joined.keyPem };
    const pub = (keyPem: string): string => createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
    const keys = [generateKeyPair().keyPem, generateKeyPair().keyPem];
    const ask = (client: { certPem: string; keyPem: string } | undefined, gateways: unknown): Promise<GatewayCertificatesResponse> =>
      callJoinApi<GatewayCertificatesResponse>({ address: j.address, caPem: j.caPem, ...(client === undefined ? {} : { client }) }, '/v1/gateway-certificates', { gateways });
    const got = await ask(c4, [{ name: 'c4-n1', publicKeyPem: pub(keys[0] ?? '') }, { name: 'c4-n2', publicKeyPem: pub(keys[1] ?? '') }]);
    assert.equal(got.certificates.map((c) => c.name), ['c4-n1', 'c4-n2']);
    for (const [i, c] of got.certificates.entries()) {
      const info = certificateInfo(c.certPem);
      assert.is(info.commonName, `${c.name}.c4`);
      assert.equal(info.organizations, ['isthmus:gateway']);
      verifyChain(c.certPem, lab.ca.certPem);
      assert.is(new X509Certificate(c.certPem).publicKey.export({ type: 'spki', format: 'pem' }).toString(), pub(keys[i] ?? ''));
    }
    const one = [{ name: 'c4-n3', publicKeyPem: pub(keys[0] ?? '') }];
    assert.is((await refusal(ask(undefined, one))).code, ErrorCodes.UNAUTHENTICATED);
    assert.is((await refusal(ask(await lab.tls('admin'), one))).code, ErrorCodes.PERMISSION_DENIED);
    const gatewayKey = keys[0] ?? '';
    assert.is((await refusal(ask({ certPem: got.certificates[0]?.certPem ?? '', keyPem: gatewayKey }, one))).code, ErrorCodes.PERMISSION_DENIED);
    for (const bad of [[], 'c4-n1', [{ name: 'C4_N1', publicKeyPem: pub(gatewayKey) }], [{ name: 'x', publicKeyPem: 'not a key' }], [{ name: 'a'.repeat(63), publicKeyPem: pub(gatewayKey) }],
      [{ name: 'n', publicKeyPem: pub(gatewayKey) }, { name: 'n', publicKeyPem: pub(gatewayKey) }], Array.from({ length: 17 }, (_, i) => ({ name: `n${i}`, publicKeyPem: pub(gatewayKey) }))]) {
      const e = await refusal(ask(c4, bad));
      assert.is(e.code, ErrorCodes.INVALID_ARGUMENT, JSON.stringify(bad).slice(0, 80));
    }
    // c1 (a member certificate from the lab's PKI, never registered here): not a member
    assert.is((await refusal(ask(await lab.tls('c1'), one))).code, ErrorCodes.FAILED_PRECONDITION);
    await revoke(lab.etcd(), { clusterId: 'c4' }, 'test');
    const revoked = await refusal(ask(c4, one));
    assert.is(revoked.code, ErrorCodes.PERMISSION_DENIED);
    assert.match(revoked.message, /revoked/);
  });
});

test('two joins racing with one token: exactly one wins', async () => {
  await withJoin(async (j, lab) => {
    const token = await j.mint();
    const results = await Promise.allSettled([j.join(token, 'c6', '10.6.0.0/16'), j.join(token, 'c7', '10.7.0.0/16')]);
    assert.is(results.filter((r) => r.status === 'fulfilled').length, 1);
    const lost = results.find((r) => r.status === 'rejected');
    assert.is(((lost as PromiseRejectedResult).reason as IsthmusError).code, ErrorCodes.BAD_TOKEN);
  });
});

test('refusals: a bound token, a taken id, overlapping CIDRs (naming the member), a tampered token; none spends the token', async () => {
  await withJoin(async (j, lab) => {
    await j.join(await j.mint(), 'c1', '10.1.0.0/16');
    const bound = await j.mint({ clusterId: 'c2' });
    assert.match((await refusal(j.join(bound, 'c3', '10.3.0.0/16'))).message, /is for cluster c2, not c3/);
    const token = await j.mint();
    const taken = await refusal(j.join(token, 'c1', '10.9.0.0/16'));
    assert.is(taken.code, ErrorCodes.ALREADY_EXISTS);
    const overlap = await refusal(j.join(token, 'c2', '10.1.128.0/17'));
    assert.is(overlap.code, ErrorCodes.CIDR_IN_USE);
    assert.match(overlap.message, /overlaps 10\.1\.0\.0\/16 of member cluster c1/);
    const { id, secret } = parseJoinToken(token);
    const tampered = await refusal(j.join(`ijt_${id}.${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`, 'c2', '10.2.0.0/16'));
    assert.is(tampered.code, ErrorCodes.BAD_TOKEN);
    assert.equal((await j.join(token, 'c2', '10.2.0.0/16')).members, ['c1', 'c2']);
  });
});

test.run();
