import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { clockFindings, nodeOffsetMs, type ClockSample } from './diagnose-clock.ts';

const sample = (cluster: string, offsetMs: number, nodes: ClockSample['nodes'] = [], uncertaintyMs = 600): ClockSample => ({ cluster, offsetMs, uncertaintyMs, nodes });

test('clusters in step: one ok finding per pair', () => {
  const f = clockFindings([sample('c1', 100), sample('c2', -300), sample('c3', 0)], 5000);
  assert.equal(f.map((x) => `${x.cluster} ${x.verdict}`), ['c1/c2 ok', 'c1/c3 ok', 'c2/c3 ok']);
  assert.match(f[0]?.detail ?? '', /apiserver clocks within 1\.6 s/);
});

test('skew beyond the threshold net of the uncertainty: a warning, beyond a minute a failure, each saying what to do', () => {
  // 6 s apart but ±1.2 s: not surely beyond 5 s
  assert.is(clockFindings([sample('c1', 6000), sample('c2', 0)], 5000)[0]?.verdict, 'ok');
  const warn = clockFindings([sample('c1', 0), sample('c2', 7000)], 5000)[0];
  assert.is(warn?.verdict, 'warn');
  assert.match(warn?.detail ?? '', /the apiserver clock of c1 is 7\.0 s behind c2's \(more than 5\.0 s\): synchronise the clocks \(chrony/);
  assert.is(clockFindings([sample('c1', 90_000), sample('c2', 0)], 5000)[0]?.verdict, 'fail');
});

test('a node whose Lease says its clock is off; an apiserver without a Date header is not compared', () => {
  const f = clockFindings([sample('c1', 0, [{ node: 'c1-n1', offsetMs: 0 }, { node: 'c1-n2', offsetMs: -20_000 }])], 5000);
  assert.equal(f.map((x) => `${x.cluster} ${x.verdict}`), ['c1 warn']);
  assert.match(f[0]?.detail ?? '', /node c1-n2's clock is at least 20\.0 s behind its apiserver's \(from its Lease\): synchronise .* on c1-n2/);
  const unread = clockFindings([sample('c1', 0), sample('c2', 0, [], Number.POSITIVE_INFINITY)], 5000);
  assert.equal(unread.map((x) => x.verdict), ['warn']);
  assert.match(unread[0]?.detail ?? '', /c2 sent no Date header/);
});

test('node offset from its Lease: ahead of the apiserver, stale while Ready, else in range', () => {
  const now = 1_000_000;
  assert.is(nodeOffsetMs(now + 30_000, now, 40_000, true, 600), 30_000);
  assert.is(nodeOffsetMs(now - 5_000, now, 40_000, true, 600), 0, 'renewed 5 s ago');
  assert.is(nodeOffsetMs(now - 100_000, now, 40_000, true, 600), -60_000, 'Ready with a Lease 100 s old: its clock is at least 60 s behind');
  assert.is(nodeOffsetMs(now - 100_000, now, 40_000, false, 600), 0, 'not Ready: a stopped kubelet, not a clock');
});

test.run();
