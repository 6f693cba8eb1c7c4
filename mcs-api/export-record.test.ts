import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateExport } from '../broker/validate.ts';
import { exportConditions, sameConditions, type ConditionInput } from './conditions.ts';
import { buildExport } from './export-record.ts';
import type { ServiceExport } from './types.ts';

const se: ServiceExport = {
  metadata: { name: 'echo', namespace: 'demo', creationTimestamp: new Date('2026-01-01T00:00:00Z') },
  spec: { exportedLabels: { team: 'a' }, exportedAnnotations: { note: 'x' } },
};
const svc = (spec: NonNullable<V1Service['spec']>): V1Service => ({ metadata: { name: 'echo', namespace: 'demo' }, spec });
const slice = (endpoints: NonNullable<V1EndpointSlice['endpoints']>, ports: V1EndpointSlice['ports'] = [{ name: 'http', protocol: 'TCP', port: 8080 }]): V1EndpointSlice =>
  ({ addressType: 'IPv4', endpoints, ports });

test('no Service: NoService, nothing to publish; ExternalName: InvalidServiceType', () => {
  const none = buildExport('c1', se, undefined, []);
  assert.equal([none.validity.valid, none.record], [false, undefined]);
  assert.is(none.validity.valid ? '' : none.validity.reason, 'NoService');
  const ext = buildExport('c1', se, svc({ type: 'ExternalName', externalName: 'example.com' }), []);
  assert.is(ext.validity.valid ? '' : ext.validity.reason, 'InvalidServiceType');
  assert.is(ext.record, undefined);
});

test('a ClusterIP Service: its properties, pod endpoints (not the ClusterIP), resolved pod ports; the broker accepts it', () => {
  const s = svc({
    type: 'ClusterIP', clusterIP: '10.101.0.9', ports: [{ name: 'http', protocol: 'TCP', port: 80 }], sessionAffinity: 'ClientIP',
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } }, ipFamilies: ['IPv4'], internalTrafficPolicy: 'Cluster', trafficDistribution: 'PreferClose',
  });
  const { record } = buildExport('c1', se, s, [
    slice([{ addresses: ['10.1.0.9'], conditions: { ready: true, serving: true, terminating: false }, zone: 'z1' }, { addresses: ['10.1.0.5'], conditions: { ready: false, serving: true, terminating: true } }]),
    slice([{ addresses: ['10.1.0.9'], conditions: { ready: true } }]),
  ]);
  assert.ok(record);
  assert.is(record.type, 'ClusterSetIP');
  assert.equal(record.endpoints.map((e) => [e.addresses, e.ready, e.serving, e.terminating, e.zone]), [[['10.1.0.5'], false, true, true, ''], [['10.1.0.9'], true, true, false, 'z1']]);
  assert.equal(record.endpoint_ports, [{ name: 'http', protocol: 'TCP', port: 8080, app_protocol: '' }]);
  assert.equal([record.session_affinity, record.session_affinity_timeout_seconds, record.traffic_distribution], ['ClientIP', 10, 'PreferClose']);
  assert.equal([record.labels, record.annotations, record.creation_time], [{ team: 'a' }, { note: 'x' }, '2026-01-01T00:00:00.000Z']);
  assert.equal(validateExport(record), record);
});

test('headless when clusterIP is None; same slices in another order give the same record', () => {
  const s = svc({ clusterIP: 'None', ports: [{ name: 'http', port: 80 }] });
  const a = slice([{ addresses: ['10.1.0.1'], hostname: 'web-0' }]);
  const b = slice([{ addresses: ['10.1.0.2'], hostname: 'web-1' }]);
  const r1 = buildExport('c1', se, s, [a, b]).record;
  assert.is(r1?.type, 'Headless');
  assert.equal(r1, buildExport('c1', se, s, [b, a]).record);
});

const input = (over: Partial<ConditionInput>): ConditionInput => ({
  validity: { valid: true }, publication: { state: 'exported' }, conflicts: { reasons: [], message: '' }, generation: 2, now: new Date('2026-01-01T00:00:00Z'), previous: [], ...over,
});
const summary = (i: ConditionInput): string[] => exportConditions(i).map((c) => `${c.type}=${c.status}/${c.reason}`);

test('conditions: Valid, Ready and Conflict with the KEP reasons', () => {
  assert.equal(summary(input({})), ['Valid=True/Valid', 'Ready=True/Exported', 'Conflict=False/NoConflicts']);
  assert.equal(summary(input({ validity: { valid: false, reason: 'NoService', message: 'm' } })), ['Valid=False/NoService', 'Ready=False/Pending', 'Conflict=Unknown/Pending']);
  assert.equal(summary(input({ validity: { valid: false, reason: 'InvalidServiceType', message: 'm' } }))[0], 'Valid=False/InvalidServiceType');
  assert.equal(summary(input({ publication: { state: 'pending' } }))[1], 'Ready=False/Pending');
  assert.equal(summary(input({ publication: { state: 'failed', message: 'broker unreachable' } }))[1], 'Ready=False/Failed');
  assert.equal(summary(input({ conflicts: { reasons: ['PortConflict', 'LabelsConflict'], message: 'm' } }))[2], 'Conflict=True/PortConflict,LabelsConflict');
  assert.equal(summary(input({ conflicts: undefined }))[2], 'Conflict=Unknown/Pending');
});

test('conditions: lastTransitionTime moves only when the status changes', () => {
  const first = exportConditions(input({}));
  const later = exportConditions(input({ now: new Date('2026-01-02T00:00:00Z'), previous: first }));
  assert.equal(later.map((c) => c.lastTransitionTime), first.map((c) => c.lastTransitionTime));
  assert.ok(sameConditions(first, later));
  const flipped = exportConditions(input({ now: new Date('2026-01-02T00:00:00Z'), previous: first, conflicts: { reasons: ['TypeConflict'], message: 'm' } }));
  assert.equal(flipped[2]?.lastTransitionTime, new Date('2026-01-02T00:00:00Z'));
  assert.not.ok(sameConditions(first, flipped));
});

test.run();
