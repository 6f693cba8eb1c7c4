import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { certificateInfo } from '../core/index.ts';
import { issueFor, readIssued, renewDir, rotateClustersetCA, writeIssued } from '../certs/index.ts';
import { Lab, eventually } from './broker-harness.ts';

// Renewal with overlap against a running broker: it picks up its renewed certificate
// and a rotated CA bundle from its TLS directory without a restart, and clients with
// old and new certificates both keep working through the rotation.
let lab: Lab;

test.before(async () => {
  lab = await Lab.create();
  await lab.startEtcd(1);
  await lab.makePki(['c1', 'c2']);
});

test.after(async () => {
  await lab?.cleanup();
});

/** The serial of the certificate the broker presents to a new TLS connection. */
async function servedSerial(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca: caPem, ALPNProtocols: ['h2'], servername: 'localhost' }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial.toUpperCase());
    });
    s.on('error', reject);
  });
}

test('the broker serves its renewed certificate and a rotated CA without restarting; nothing drops', async () => {
  const brokerDir = join(lab.pki, 'broker');
  const broker = await lab.startBroker({ tlsRefreshMs: 200 });
  const oldClient = lab.client(broker.port, await lab.tls('c1'), { retryForMs: 0 });
  await oldClient.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
  const before = (await readIssued(brokerDir)).certPem;
  assert.is(await servedSerial(broker.port, lab.ca.certPem), certificateInfo(before).serial);

  // renew the broker's certificate in place
  const r = await renewDir(brokerDir, lab.ca, { force: true });
  assert.ok(r.renewed);
  const renewed = (await readIssued(brokerDir)).certPem;
  await eventually('the broker to serve the renewed certificate', async () => ((await servedSerial(broker.port, lab.ca.certPem)) === certificateInfo(renewed).serial ? true : undefined), 10_000, 100);
  await oldClient.publishExport({ cluster_id: 'c1', namespace: 'default', name: 'before-rotation' });

  // rotate the CA: the broker trusts old and new; a cluster with a certificate from the new CA gets in
  const next = rotateClustersetCA(lab.ca);
  await renewDir(brokerDir, next, { force: true }); // broker cert from the new CA, ca.crt = bundle of both
  const c2Dir = join(lab.dir, 'c2-new');
  await writeIssued(c2Dir, issueFor(next, { role: 'cluster', clusterId: 'c2' }), next);
  const newClient = lab.client(broker.port, await readIssued(c2Dir).then((t) => ({ caPem: t.caPem, certPem: t.certPem, keyPem: t.keyPem })), { retryForMs: 0 });
  await eventually('a new-CA client to be accepted', async () => {
    await newClient.registerCluster({ cluster_id: 'c2', pod_cidrs: ['10.2.0.0/16'], service_cidrs: ['10.102.0.0/16'] });
    return true;
  }, 10_000, 200);
  // the old client (old CA cert, trusting the old CA only) still works: its connection is up,
  // and new connections from it verify the broker... once it trusts the bundle; give it the bundle
  await oldClient.publishExport({ cluster_id: 'c1', namespace: 'default', name: 'during-rotation' });
  const oldWithBundle = lab.client(broker.port, { ...(await lab.tls('c1')), caPem: next.bundlePem }, { retryForMs: 0 });
  await oldWithBundle.publishExport({ cluster_id: 'c1', namespace: 'default', name: 'old-cert-new-connection' });
  const { events } = await newClient.list(['EXPORT']);
  assert.equal(events.map((e) => e.key).sort(), ['c1/default/before-rotation', 'c1/default/during-rotation', 'c1/default/old-cert-new-connection']);
  await lab.stopBroker(broker);
});

test.run();
