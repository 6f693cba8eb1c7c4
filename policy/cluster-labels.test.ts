import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLUSTER_ID_PROPERTY, CLUSTER_LABEL_LIMITS, publishedClusterLabels, receivedClusterLabels, type ClusterPropertyLike } from './cluster-labels.ts';

const prop = (name: string, value: unknown): ClusterPropertyLike => ({ metadata: { name }, spec: { value } });

test('published: one label per ClusterProperty, the id property always this cluster\'s id; deterministic whatever the order', () => {
  const props = [prop('region.example.com', 'eu-west'), prop(CLUSTER_ID_PROPERTY, 'c2'), prop('clusterset.k8s.io', 'prod-set'), prop('tier', 'gold')];
  const a = publishedClusterLabels('c2', props);
  assert.equal(a.labels, { [CLUSTER_ID_PROPERTY]: 'c2', 'clusterset.k8s.io': 'prod-set', 'region.example.com': 'eu-west', tier: 'gold' });
  assert.equal(a.skipped, []);
  assert.equal(JSON.stringify(publishedClusterLabels('c2', [...props].reverse())), JSON.stringify(a));
  assert.equal(publishedClusterLabels('c2', []).labels, { [CLUSTER_ID_PROPERTY]: 'c2' }, 'without any property: the id label');
});

test('published: each property that is no label is left out with the reason; the id cannot be claimed', () => {
  const r = publishedClusterLabels('c2', [
    prop(CLUSTER_ID_PROPERTY, 'c1'),
    prop('x'.repeat(64), 'a'),
    prop('bad name', 'a'),
    prop('long-value', 'v'.repeat(64)),
    prop('spaces', 'a b'),
    prop('not-a-string', 7),
    prop('nothing', undefined),
    prop('empty-ok', ''),
  ]);
  assert.equal(r.labels, { [CLUSTER_ID_PROPERTY]: 'c2', 'empty-ok': '' });
  assert.is(r.skipped.length, 7);
  assert.match(r.skipped.join('\n'), /cluster\.clusterset\.k8s\.io: its value "c1" is not this cluster's id c2/);
  assert.match(r.skipped.join('\n'), /bad name: the name is not a label name/);
  assert.match(r.skipped.join('\n'), /long-value: its value is not a label value/);
});

test('published: bounded in count, the first by name kept (a ClusterProperty name has no prefix: 32 labels stay under the byte bound)', () => {
  const many = Array.from({ length: 50 }, (_, i) => prop(`p${String(i).padStart(2, '0')}`, 'v'));
  const r = publishedClusterLabels('c2', many);
  assert.is(Object.keys(r.labels).length, CLUSTER_LABEL_LIMITS.count);
  assert.ok('p00' in r.labels && !('p49' in r.labels));
  assert.is(r.skipped.length, 50 - (CLUSTER_LABEL_LIMITS.count - 1));
  const big = Array.from({ length: 40 }, (_, i) => prop(`k${String(i).padStart(2, '0')}${'n'.repeat(60)}`, 'v'.repeat(63)));
  const bytes = Object.entries(publishedClusterLabels('c2', big).labels).reduce((n, [k, v]) => n + k.length + v.length, 0);
  assert.ok(bytes <= CLUSTER_LABEL_LIMITS.bytes, `${bytes} bytes`);
});

test('received: validated, the id label forced to the record\'s cluster; a bad set dropped whole with the reason', () => {
  assert.equal(receivedClusterLabels('c2', { tier: 'gold' }).labels, { [CLUSTER_ID_PROPERTY]: 'c2', tier: 'gold' });
  assert.equal(receivedClusterLabels('c2', undefined).labels, { [CLUSTER_ID_PROPERTY]: 'c2' });
  // a hostile member claiming another's id
  assert.equal(receivedClusterLabels('c3', { [CLUSTER_ID_PROPERTY]: 'c1', tier: 'gold' }).labels, { [CLUSTER_ID_PROPERTY]: 'c3', tier: 'gold' });
  const table: [string, unknown, RegExp][] = [
    ['not a map', ['a'], /must be an object/],
    ['a bad name', { 'a b': 'x' }, /is not a label name/],
    ['a bad value', { tier: 'a b' }, /is not a label value/],
    ['a value not a string', { tier: 5 }, /is not a label value/],
    ['too many', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'])), /at most 32 are allowed/],
    ['too large', Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`${'d'.repeat(60)}.example.com/k${i}`, 'v'.repeat(63)])), /bytes; at most 4096 are allowed/],
  ];
  for (const [what, labels, problem] of table) {
    const r = receivedClusterLabels('c2', labels);
    assert.equal(r.labels, { [CLUSTER_ID_PROPERTY]: 'c2' }, what);
    assert.match(r.problem ?? '', problem, what);
  }
});

test.run();
