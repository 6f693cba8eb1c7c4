import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dnsService, mcsSliceServiceKey } from './from-k8s.ts';

const imp = { metadata: { namespace: 'demo', name: 'db' }, spec: { type: 'Headless' as const, ports: [{ name: 'pg', port: 5432 }] } };
const slice = (cluster: string | undefined, ready: boolean | undefined) => ({
  metadata: { namespace: 'demo', name: `db-${cluster ?? 'x'}`, labels: { 'multicluster.kubernetes.io/service-name': 'db', ...(cluster === undefined ? {} : { 'multicluster.kubernetes.io/source-cluster': cluster }) } },
  addressType: 'IPv4', ports: [{ name: 'pg', port: 5432 }],
  endpoints: [{ addresses: ['10.2.0.5'], hostname: 'db-0', ...(ready === undefined ? {} : { conditions: { ready } }) }],
});

test('ServiceImport + MCS slices → the zone\'s view; missing ready means ready; slices without a source cluster are skipped', () => {
  const d = dnsService(imp, [slice('c2', undefined), slice('c3', false), slice(undefined, true)]);
  assert.equal(d, {
    namespace: 'demo', name: 'db', type: 'Headless', ips: [], ports: [{ name: 'pg', protocol: 'TCP', port: 5432 }],
    slices: [
      { cluster: 'c2', portNames: ['pg'], endpoints: [{ hostname: 'db-0', addresses: ['10.2.0.5'], ready: true }] },
      { cluster: 'c3', portNames: ['pg'], endpoints: [{ hostname: 'db-0', addresses: ['10.2.0.5'], ready: false }] },
    ],
  });
  assert.is(dnsService(undefined, [slice('c2', true)]), undefined);
});

test('slice key: namespace/service from the MCS label, none for other slices', () => {
  assert.is(mcsSliceServiceKey(slice('c2', true)), 'demo/db');
  assert.is(mcsSliceServiceKey({ addressType: 'IPv4', endpoints: [], metadata: { namespace: 'demo', name: 'x' } }), undefined);
});

test.run();
