import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { specOutcomes } from './conformance-report.ts';

// Shaped like what mcs-conformance.test -ginkgo.json-report writes (fields trimmed).
const report = [{
  SuiteDescription: 'Conformance Suite',
  SpecReports: [
    { LeafNodeType: 'BeforeSuite', LeafNodeText: '', State: 'passed', RunTime: 5e6 },
    {
      ContainerHierarchyTexts: [''], ContainerHierarchyLabels: [[]], LeafNodeType: 'It', LeafNodeLabels: ['Required'],
      LeafNodeText: 'A ServiceImport should only exist as long as there\'s at least one exporting cluster', State: 'passed', RunTime: 12_345_678_901,
      ReportEntries: [{ Name: 'spec-ref', Value: { AsJSON: '"https://example/kep"', Representation: 'https://example/kep' } }],
    },
    {
      ContainerHierarchyTexts: ['', 'A ClusterIP service exported on two clusters', 'with conflicting ports'],
      ContainerHierarchyLabels: [['ClusterIP'], [], ['Required']], LeafNodeType: 'It', LeafNodeLabels: null,
      LeafNodeText: 'should apply the conflict resolution policy', State: 'failed', RunTime: 2e9,
      Failure: { Message: 'The Conflict condition was not set to True\nExpected\n    <bool>: false', Location: { FileName: 'sigs.k8s.io/mcs-api/conformance/service_import.go', LineNumber: 301 } },
      ReportEntries: [{ Name: 'non-conformant', Value: { AsJSON: '"The Conflict condition was not set to True"', Representation: 'x' } }],
    },
    { ContainerHierarchyTexts: [''], ContainerHierarchyLabels: [['Optional', 'DNS']], LeafNodeType: 'It', LeafNodeLabels: ['DNS'], LeafNodeText: 'skipped one', State: 'skipped', RunTime: 0,
      Failure: { Message: 'This test requires at least 2 clusters - skipping' } },
    { LeafNodeType: 'ReportAfterSuite', LeafNodeText: 'MCS conformance report', State: 'passed' },
  ],
}];

test('one outcome per It leaf, in order, named by the container and leaf texts', () => {
  const got = specOutcomes(report);
  assert.equal(got.map((s) => s.name), [
    'A ServiceImport should only exist as long as there\'s at least one exporting cluster',
    'A ClusterIP service exported on two clusters with conflicting ports should apply the conflict resolution policy',
    'skipped one',
  ]);
});

test('labels: the leaf\'s and every container\'s, deduplicated and sorted', () => {
  const got = specOutcomes(report);
  assert.equal(got.map((s) => s.labels), [['Required'], ['ClusterIP', 'Required'], ['DNS', 'Optional']]);
});

test('state, run time, and the failure message with its place and the suite\'s non-conformance note', () => {
  const [ok, failed, skipped] = specOutcomes(report);
  assert.is(ok?.state, 'passed');
  assert.is(ok?.message, '');
  assert.is(ok?.runTimeMs, 12_346);
  assert.is(failed?.state, 'failed');
  assert.match(failed?.message ?? '', /^The Conflict condition was not set to True\nExpected\n {4}<bool>: false \(service_import\.go:301\)\nnon-conformant: The Conflict condition was not set to True$/);
  assert.is(skipped?.state, 'skipped');
  assert.is(skipped?.message, 'This test requires at least 2 clusters - skipping');
});

test('bad reports: not an array, a suite that is not an object, an unknown state', () => {
  assert.throws(() => specOutcomes({}), /expected an array of suite reports/);
  assert.throws(() => specOutcomes([null]), /a suite report is not an object/);
  assert.throws(() => specOutcomes([{ SpecReports: [{ LeafNodeType: 'It', LeafNodeText: 'x', State: 'weird' }] }]), /spec "x" has state "weird"/);
  assert.equal(specOutcomes([{ SpecReports: null }]), []);
});

test.run();
