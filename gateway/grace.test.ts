import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CableSpec } from './cable/driver.ts';
import { holdVanished } from './grace.ts';

const cable = (remoteCluster: string, remoteIp = '172.29.0.12'): CableSpec => ({
  remoteCluster, remoteIp, remotePort: 51820, remoteCidrs: ['10.2.0.0/16'], natTraversal: false, backend: {},
});
const names = (cs: readonly CableSpec[]): string[] => cs.map((c) => c.remoteCluster);
const both = new Set(['c2', 'c3']);

test('an endpoint that vanished while its cluster is registered keeps its cable for the grace period', () => {
  const prev = [cable('c2'), cable('c3')];
  let h = holdVanished(prev, [cable('c3')], both, new Map(), 1_000, 20_000);
  assert.equal(names(h.cables), ['c2', 'c3']);
  assert.equal([...h.vanishedSince], [['c2', 1_000]]);
  h = holdVanished(h.cables, [cable('c3')], both, h.vanishedSince, 20_999, 20_000);
  assert.equal(names(h.cables), ['c2', 'c3'], 'still within the grace period');
  h = holdVanished(h.cables, [cable('c3')], both, h.vanishedSince, 21_000, 20_000);
  assert.equal(names(h.cables), ['c3'], 'gone after it');
  assert.is(h.vanishedSince.size, 0);
});

test('the endpoint coming back ends the hold and its new spec wins', () => {
  const h = holdVanished([cable('c2')], [], both, new Map(), 1_000, 20_000);
  const back = holdVanished(h.cables, [cable('c2', '172.29.0.32')], both, h.vanishedSince, 5_000, 20_000);
  assert.equal(back.cables.map((c) => c.remoteIp), ['172.29.0.32']);
  assert.is(back.vanishedSince.size, 0);
  const again = holdVanished(back.cables, [], both, back.vanishedSince, 6_000, 20_000);
  assert.equal([...again.vanishedSince], [['c2', 6_000]], 'a later disappearance starts a new grace period');
});

test('a cluster that left loses its cable at once; nothing is invented', () => {
  const h = holdVanished([cable('c2'), cable('c3')], [cable('c3')], new Set(['c3']), new Map(), 1_000, 20_000);
  assert.equal(names(h.cables), ['c3']);
  assert.equal(names(holdVanished([], [], both, new Map([['c2', 0]]), 1, 20_000).cables), []);
});

test.run();
