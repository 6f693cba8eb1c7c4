import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { validateCluster, validateEndpoint, validateExport, validateTtl } from './validate.ts';
import { clusterOfKey, endpointKey, etcdKey, exportKey, globalCidrKey, parseEtcdKey, policyStatusKey, prefixEnd } from './keys.ts';
import { eventFromMessage, eventMessage, methods, toKinds, toRevision } from '../core/broker-api/proto.ts';
import { peerAddress } from './server.ts';
import { fromServiceError, isQuotaRefusal, toStatus } from '../core/broker-api/status.ts';
import { Metadata, status } from '@grpc/grpc-js';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, ErrorCodes.INVALID_ARGUMENT);
    return (err as Error).message;
  }
  throw new Error('expected INVALID_ARGUMENT');
}

test('clusters are normalized: CIDRs canonical, labels sorted, global_cidr ignored', () => {
  const c = validateCluster({ cluster_id: 'c1', pod_cidrs: ['FD00:0:0:1::/64', '10.1.0.0/16'], service_cidrs: ['10.96.0.0/12'], labels: { z: '1', a: '2' }, global_cidr: '242.0.0.0/16' });
  assert.equal(c, { cluster_id: 'c1', pod_cidrs: ['fd00:0:0:1::/64', '10.1.0.0/16'], service_cidrs: ['10.96.0.0/12'], labels: { a: '2', z: '1' }, global_cidr: '' });
  assert.equal(Object.keys(c.labels), ['a', 'z']);
});

test('cluster problems are named by field', () => {
  assert.match(message(() => validateCluster(undefined)), /cluster is required/);
  assert.match(message(() => validateCluster({ cluster_id: 'c1', pod_cidrs: 'x', service_cidrs: [] })), /pod_cidrs must be a list/);
  assert.match(message(() => validateCluster({ cluster_id: 'c1', pod_cidrs: ['10.0.0.0/8'], service_cidrs: [] })), /service_cidrs must hold at least one/);
  assert.match(message(() => validateCluster({ cluster_id: 'c1', pod_cidrs: [5], service_cidrs: ['10.0.0.0/8'] })), /pod_cidrs\[0\] must be a string/);
  assert.match(message(() => validateCluster({ cluster_id: 'c1', pod_cidrs: Array(17).fill('10.0.0.0/8'), service_cidrs: ['10.0.0.0/8'] })), /at most 16/);
  assert.match(message(() => validateCluster({ cluster_id: 'c1', pod_cidrs: ['10.0.0.0/8'], service_cidrs: ['11.0.0.0/8'], labels: { a: 'has space' } })), /labels\[a\]: value is not valid/);
});

test('endpoints: defaults, IPs, ports, drivers', () => {
  const e = validateEndpoint({ cluster_id: 'c1', hostname: 'node-1.example', private_ip: 'fd00::5', cable_driver: 'ipsec', ports: [{ port: 4500 }], observed_source_ip: '6.6.6.6' });
  assert.equal(e.ports, [{ name: '', port: 4500, protocol: 'UDP' }]);
  assert.is(e.observed_source_ip, '', 'set by the broker, never by the client');
  assert.is(e.public_ip, '');
  assert.match(message(() => validateEndpoint({ ...e, ports: [{ port: 0 }] })), /ports\[0\]\.port must be a whole number from 1 to 65535/);
  assert.match(message(() => validateEndpoint({ ...e, ports: [{ port: 1024, protocol: 'ICMP' }] })), /protocol must be one of UDP, TCP/);
  assert.match(message(() => validateEndpoint({ ...e, cable_driver: '' })), /cable_driver "" is not an RFC-1123 label/);
  assert.match(message(() => validateEndpoint({ ...e, health_check_ip: '1.2.3' })), /health_check_ip "1\.2\.3"/);
  assert.match(message(() => validateEndpoint({ ...e, hostname: 'a'.repeat(64) + '.x' })), /not an RFC-1123 host name/);
});

test('issue 10 findings 5 and 10: non-unicast, reserved, over-broad and foreign CIDRs; non-unicast addresses; privileged ports', () => {
  const c = (pod: string) => ({ cluster_id: 'c1', pod_cidrs: [pod], service_cidrs: ['10.96.0.0/12'] });
  for (const [cidr, why] of [['127.0.0.0/8', /loopback/], ['169.254.0.0/16', /metadata/], ['224.0.0.0/4', /multicast/], ['64.0.0.0/2', /loopback/], ['32.0.0.0/4', /broader/], ['8.8.8.0/24', /allowed ranges/]] as const) {
    assert.match(message(() => validateCluster(c(cidr))), why, cidr);
  }
  assert.is(validateCluster(c('8.8.8.0/24'), ['8.8.0.0/16', '10.0.0.0/8']).pod_cidrs[0], '8.8.8.0/24', 'an allow-list given by the operator');
  const e = { cluster_id: 'c1', hostname: 'gw', private_ip: '192.168.1.5', cable_driver: 'wireguard', ports: [{ port: 51820 }] };
  for (const [field, value] of [['private_ip', '0.0.0.0'], ['private_ip', '255.255.255.255'], ['public_ip', '224.0.0.1'], ['public_ip', '::'], ['health_check_ip', '127.0.0.1']] as const) {
    assert.match(message(() => validateEndpoint({ ...e, [field]: value })), new RegExp(`${field}: .*not a unicast address`), `${field}=${value}`);
  }
  assert.match(message(() => validateEndpoint({ ...e, ports: [{ name: 'nat-probe', port: 53 }] })), /privileged port/);
  assert.equal(validateEndpoint({ ...e, ports: [{ port: 500 }, { port: 4500 }] }).ports.map((p) => p.port), [500, 4500], 'IKE ports are fine');
  assert.match(message(() => validateEndpoint({ ...e, backend_config: { 'cert-cn': 'gw.c2' } })), /not "<gateway>\.c1"/);
  assert.match(message(() => validateEndpoint({ ...e, backend_config: { 'cert-cn': 'c1' } })), /not "<gateway>\.c1"/);
  assert.match(message(() => validateEndpoint({ ...e, backend_config: { 'cert-cn': 'a.b.c1' } })), /not "<gateway>\.c1"/);
  assert.is(validateEndpoint({ ...e, backend_config: { 'cert-cn': 'gw-1.c1' } }).backend_config['cert-cn'], 'gw-1.c1');
  assert.match(message(() => validateEndpoint({ ...e, backend_config: { note: 'two\nlines' } })), /printable ASCII/);
  const x = { cluster_id: 'c1', namespace: 'default', name: 'db', type: 'Headless', endpoints: [{ addresses: ['224.0.0.1'] }] };
  assert.match(message(() => validateExport(x)), /addresses\[0\]: 224\.0\.0\.1 is multicast/);
});

test('exports: defaults and headless endpoints', () => {
  const now = new Date('2026-02-03T04:05:06Z');
  const x = validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'db', type: 'Headless', endpoints: [{ hostname: 'db-0', addresses: ['10.1.2.3'], ready: true }] }, now);
  assert.is(x.session_affinity, 'None');
  assert.is(x.creation_time, '2026-02-03T04:05:06.000Z');
  assert.equal(x.endpoints, [{ hostname: 'db-0', addresses: ['10.1.2.3'], ready: true, serving: false, terminating: false, zone: '' }]);
  assert.equal(validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', ports: [{ port: 443 }] }).ports, [{ name: '', protocol: 'TCP', port: 443, app_protocol: '' }]);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', ip_families: ['IPv4', 'IPv4'] })), /each once/);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', session_affinity: 'Sticky' })), /session_affinity must be one of None, ClientIP/);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'db', type: 'Headless', endpoints: [{ addresses: [] }] })), /at least one IP/);
  assert.is(validateTtl(0), 30);
});

test('exports: pod endpoints for both types, traffic fields and endpoint ports (KEP-1645 fields)', () => {
  const ep = { hostname: '', addresses: ['10.1.2.4'], ready: true, serving: true, terminating: false, zone: 'zone-a' };
  const x = validateExport({
    cluster_id: 'c1', namespace: 'ns', name: 'web', ports: [{ name: 'http', port: 80 }], endpoints: [ep],
    internal_traffic_policy: 'Local', traffic_distribution: 'PreferClose', endpoint_ports: [{ name: 'http', port: 8080 }],
  });
  assert.equal(x.endpoints, [ep]);
  assert.is(x.internal_traffic_policy, 'Local');
  assert.is(x.traffic_distribution, 'PreferClose');
  assert.equal(x.endpoint_ports, [{ name: 'http', protocol: 'TCP', port: 8080, app_protocol: '' }]);
  const plain = validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web' });
  assert.equal([plain.internal_traffic_policy, plain.traffic_distribution, plain.endpoint_ports], ['', '', []]);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', internal_traffic_policy: 'Nearby' })), /internal_traffic_policy must be one of Cluster, Local/);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', traffic_distribution: 'Prefer Close' })), /traffic_distribution "Prefer Close"/);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', endpoint_ports: [{ port: 0 }] })), /endpoint_ports\[0\]\.port/);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', endpoints: [{ ...ep, zone: 'a b' }] })), /zone "a b"/);
  assert.match(message(() => validateExport({ cluster_id: 'c1', namespace: 'ns', name: 'web', endpoints: [{ ...ep, serving: 'yes' }] })), /serving must be a boolean/);
  assert.is(validateTtl(3600), 3600);
  assert.match(message(() => validateTtl(3601)), /ttl_seconds/);
});

test('etcd keys: layout and parsing', () => {
  assert.is(etcdKey('CLUSTER', 'c1'), '/isthmus/v1/clusters/c1');
  assert.is(endpointKey('c1', 'gw'), '/isthmus/v1/endpoints/c1/gw');
  assert.is(exportKey('c1', 'ns', 'web'), '/isthmus/v1/exports/c1/ns/web');
  assert.is(policyStatusKey('c2', 'c1', 'ns', 'p'), '/isthmus/v1/policystatuses/c2/c1/ns/p');
  assert.equal(parseEtcdKey('/isthmus/v1/policystatuses/c2/c1/ns/p'), { kind: 'POLICY_STATUS', key: 'c2/c1/ns/p' });
  assert.is(globalCidrKey('242.3.0.0/16'), '/isthmus/v1/globalcidrs/242.3.0.0_16');
  assert.equal(parseEtcdKey('/isthmus/v1/exports/c1/ns/web'), { kind: 'EXPORT', key: 'c1/ns/web' });
  assert.is(parseEtcdKey('/isthmus/v1/globalcidrs/242.3.0.0_16'), undefined);
  assert.is(parseEtcdKey('/other/x'), undefined);
  assert.is(clusterOfKey('c1/ns/web'), 'c1');
  assert.is(prefixEnd('/a/').toString(), '/a0');
  assert.is(prefixEnd('/isthmus/v1/').toString(), '/isthmus/v10');
});

test('proto: events round-trip through the wire format; kinds and revisions are checked', () => {
  const e = { type: 'DELETE' as const, kind: 'ENDPOINT' as const, key: 'c1/gw', revision: 1234567, record: validateEndpoint({ cluster_id: 'c1', hostname: 'gw', private_ip: '10.0.0.1', cable_driver: 'vxlan' }) };
  const wire = methods.Watch.responseSerialize({ events: [eventMessage(e)], revision: '1234567' });
  const back = methods.Watch.responseDeserialize(wire) as { events: unknown[] };
  assert.equal(eventFromMessage(back.events[0]), e);
  assert.equal(toKinds([]), ['CLUSTER', 'ENDPOINT', 'EXPORT', 'POLICY', 'IDENTITY', 'POLICY_STATUS']);
  // the policy kinds travel too
  const p = { type: 'PUT' as const, kind: 'IDENTITY' as const, key: 'c2/web', revision: 9, record: { cluster_id: 'c2', namespace: 'web', namespace_labels: { team: 'web' }, identities: [{ id: 1, labels: { app: 'f' } }], pods: [{ ip: '10.2.0.5', name: 'f-1', identity: 1 }] } };
  assert.equal(eventFromMessage((methods.Watch.responseDeserialize(methods.Watch.responseSerialize({ events: [eventMessage(p)], revision: '9' })) as { events: unknown[] }).events[0]), p);
  const st = { type: 'PUT' as const, kind: 'POLICY_STATUS' as const, key: 'c2/c1/web/p', revision: 10, record: { cluster_id: 'c2', policy_cluster: 'c1', namespace: 'web', name: 'p', generation: 4, state: 'Accepted' as const, message: 'governs web', enforced_nodes: 1, nodes: 2 } };
  assert.equal(eventFromMessage((methods.Watch.responseDeserialize(methods.Watch.responseSerialize({ events: [eventMessage(st)], revision: '10' })) as { events: unknown[] }).events[0]), st);
  assert.equal(toKinds(['EXPORT', 'EXPORT']), ['EXPORT']);
  assert.match(message(() => toKinds(['KIND_UNSPECIFIED'])), /unknown kind/);
  assert.is(toRevision('42', 'r'), 42);
  assert.match(message(() => toRevision('-1', 'from_revision')), /from_revision must be a whole number/);
  assert.match(message(() => toRevision('99999999999999999', 'r')), /whole number/);
});

test('status mapping both ways keeps the Isthmus code and reason', () => {
  const st = toStatus(new IsthmusError(ErrorCodes.COMPACTED, 'gone', { context: { reason: 'too-old' } }));
  assert.is(st.code, status.OUT_OF_RANGE);
  const back = fromServiceError({ code: st.code, details: st.details, metadata: st.metadata }, 'Watch');
  assert.is(back.code, ErrorCodes.COMPACTED);
  assert.is(back.context['reason'], 'too-old');
  assert.is(toStatus(new Error('boom')).code, status.INTERNAL);
  assert.not.match(toStatus(new Error('etcd at 10.0.0.5:2379: lease not found')).details, /10\.0\.0\.5|lease/, 'issue 10 finding 12: no internals reach the client');
  assert.is(fromServiceError({ code: status.UNAVAILABLE, details: 'down', metadata: new Metadata() }, 'x').code, ErrorCodes.UNAVAILABLE);
  assert.is(toStatus(new IsthmusError(ErrorCodes.CIDR_IN_USE, 'x')).code, status.FAILED_PRECONDITION);
});

test('isQuotaRefusal: a quota refusal across the wire, not a rate limit or another error', () => {
  const wire = (e: IsthmusError): IsthmusError => {
    const st = toStatus(e);
    return fromServiceError({ code: st.code, details: st.details, metadata: st.metadata }, 'PublishExport');
  };
  assert.ok(isQuotaRefusal(wire(new IsthmusError(ErrorCodes.RESOURCE_EXHAUSTED, 'cluster c1 holds 5000 records', { context: { limit: 'maxRecords', reason: 'quota:maxRecords' } }))));
  assert.not.ok(isQuotaRefusal(wire(new IsthmusError(ErrorCodes.RESOURCE_EXHAUSTED, 'slow down', { context: { reason: 'rate' } }))));
  assert.not.ok(isQuotaRefusal(wire(new IsthmusError(ErrorCodes.UNAVAILABLE, 'down', { context: { reason: 'quota:maxRecords' } }))));
  assert.not.ok(isQuotaRefusal(new Error('quota:maxRecords')));
});

test('peer addresses', () => {
  assert.is(peerAddress('127.0.0.1:5000'), '127.0.0.1');
  assert.is(peerAddress('::ffff:10.1.2.3:5000'), '10.1.2.3');
  assert.is(peerAddress('[fd00::1]:5000'), 'fd00::1');
  assert.is(peerAddress('fd00::1:5000'), 'fd00::1');
  assert.is(peerAddress('unknown'), '');
});

test.run();
