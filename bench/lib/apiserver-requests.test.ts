import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseRequestCounts, requestDelta } from './apiserver-requests.ts';

const text = (n: number): string => [
  '# HELP apiserver_request_total [STABLE] Counter of apiserver requests',
  `apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="",verb="POST",version="v1"} ${n}`,
  `apiserver_request_total{code="200",component="apiserver",dry_run="",group="multicluster.x-k8s.io",resource="serviceimports",scope="resource",subresource="status",verb="PATCH",version="v1beta1"} ${2 * n}`,
  `apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="services",scope="namespace",subresource="",verb="POST",version="v1"} 3`,
  `apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="",verb="POST",version="v1"} 4`,
  'apiserver_request_duration_seconds_bucket{le="0.1"} 9',
  'apiserver_request_total{broken',
].join('\n');

test('parseRequestCounts: verb, resource/subresource and code, summed over the other labels', () => {
  const c = parseRequestCounts(text(10));
  assert.is(c.get('POST services 201'), 10);
  assert.is(c.get('PATCH serviceimports/status 200'), 20);
  assert.is(c.get('POST services 409'), 7, 'two scopes summed');
  assert.is(c.size, 3, 'other series and a broken line left out');
});

test('requestDelta: what the run added, largest first, unchanged series left out', () => {
  assert.equal(requestDelta(parseRequestCounts(text(10)), parseRequestCounts(text(15))), [['PATCH serviceimports/status 200', 10], ['POST services 201', 5]]);
  assert.equal(requestDelta(new Map(), parseRequestCounts(text(1)), 5), [['POST services 409', 7]]);
});

test.run();
