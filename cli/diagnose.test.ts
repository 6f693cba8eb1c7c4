import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Cluster, Endpoint } from '../core/broker-api/index.ts';
import { brokerAddressFinding, brokerFindings } from './diagnose.ts';

const cluster = (id: string, pod: string, svc: string): Cluster => ({ cluster_id: id, pod_cidrs: [pod], service_cidrs: [svc], labels: {}, global_cidr: '' });
const endpoint = (id: string, host: string): Endpoint => ({ cluster_id: id, hostname: host, private_ip: '172.29.0.11', public_ip: '', ports: [], cable_driver: 'wireguard', backend_config: {}, health_check_ip: '', observed_source_ip: '' });

test('broker findings: all well', () => {
  const f = brokerFindings([cluster('c1', '10.1.0.0/16', '10.101.0.0/16'), cluster('c2', '10.2.0.0/16', '10.102.0.0/16')], [endpoint('c1', 'n1'), endpoint('c2', 'n1')], false);
  assert.equal(f.map((x) => x.verdict), ['ok']);
});

test('broker findings: an overlap, a stale endpoint, a member without a gateway, each with what to do', () => {
  const f = brokerFindings([cluster('c1', '10.1.0.0/16', '10.101.0.0/16'), cluster('c2', '10.1.128.0/17', '10.102.0.0/16')], [endpoint('c1', 'n1'), endpoint('c9', 'n1')], false);
  assert.equal(f.map((x) => `${x.check}/${x.verdict}`), ['CIDR overlap/fail', 'stale record/warn', 'member without gateway/warn']);
  assert.match(f[0]?.detail ?? '', /c1 10\.1\.0\.0\/16 overlaps c2 10\.1\.128\.0\/17: take one out/);
  assert.match(f[1]?.detail ?? '', /c9\/n1/);
  assert.match(f[2]?.detail ?? '', /c2 publishes no gateway endpoint/);
  // under global addressing overlapping CIDRs are allowed
  assert.not.ok(brokerFindings([cluster('c1', '10.1.0.0/16', '10.101.0.0/16'), cluster('c2', '10.1.0.0/16', '10.101.0.0/16')], [endpoint('c1', 'a'), endpoint('c2', 'b')], true).some((x) => x.verdict !== 'ok'));
});

test('broker address probes: ok while two answer, warn when one of several, fail when none', () => {
  const up = (address: string) => ({ address, error: '' });
  const down = (address: string) => ({ address, error: 'broker List: No connection established' });
  const two = brokerAddressFinding('c2', [up('172.29.0.11:30974'), up('172.29.0.12:30974'), down('172.29.0.13:30974')]);
  assert.equal([two.check, two.verdict], ['broker addresses', 'ok']);
  assert.match(two.detail, /172\.29\.0\.11:30974, 172\.29\.0\.12:30974 answer; 172\.29\.0\.13:30974 does not \(no broker replica on that node\)/);
  assert.is(brokerAddressFinding('c2', [up('broker.example.net:7443')]).verdict, 'ok', 'one address listed (a load balancer), answering');
  const one = brokerAddressFinding('c2', [down('172.29.0.11:30974'), up('172.29.0.12:30974')]);
  assert.is(one.verdict, 'warn');
  assert.match(one.detail, /only 172\.29\.0\.12:30974 answers \(172\.29\.0\.11:30974: broker List/);
  assert.match(one.detail, /isthmus broker deploy/);
  const none = brokerAddressFinding('c2', [down('172.29.0.11:30974'), down('172.29.0.12:30974')]);
  assert.is(none.verdict, 'fail');
  assert.match(none.detail, /none of the broker's addresses answers/);
});

test.run();
