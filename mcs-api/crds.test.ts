import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crdFileText, mcsCrds, serviceExportCrd, serviceImportCrd, type JsonSchema } from './crds.ts';

const dir = join(import.meta.dirname, '..', 'deploy', 'crds');

test('deploy/crds holds exactly what crds.ts builds (run node mcs-api/write-crds.ts after a change)', () => {
  for (const [file, crd] of Object.entries(mcsCrds())) {
    assert.is(readFileSync(join(dir, file), 'utf8'), crdFileText(crd), file);
  }
});

function versions(crd: JsonSchema): { name: string; served: boolean; storage: boolean; schema: unknown }[] {
  return (crd['spec'] as { versions: { name: string; served: boolean; storage: boolean; schema: unknown }[] }).versions;
}

test('ServiceExport and ServiceImport: v1alpha1 served, v1beta1 served and stored, one schema for both', () => {
  for (const crd of [serviceExportCrd(), serviceImportCrd()]) {
    const v = versions(crd);
    assert.equal(v.map((x) => [x.name, x.served, x.storage]), [['v1alpha1', true, false], ['v1beta1', true, true]]);
    assert.equal(v[0]?.schema, v[1]?.schema);
    assert.is((crd['spec'] as { group: string }).group, 'multicluster.x-k8s.io');
  }
});

test('ServiceImport spec requires ports and type; type is ClusterSetIP or Headless; ips at most 2', () => {
  const spec = ((versions(serviceImportCrd())[1]?.schema as JsonSchema)['openAPIV3Schema'] as { properties: { spec: { required: string[]; properties: Record<string, JsonSchema> } } }).properties.spec;
  assert.equal(spec.required, ['ports', 'type']);
  assert.equal(spec.properties['type']?.['enum'], ['ClusterSetIP', 'Headless']);
  assert.is(spec.properties['ips']?.['maxItems'], 2);
  for (const f of ['internalTrafficPolicy', 'trafficDistribution', 'sessionAffinity', 'sessionAffinityConfig', 'ipFamilies']) assert.ok(spec.properties[f], f);
});

test.run();
