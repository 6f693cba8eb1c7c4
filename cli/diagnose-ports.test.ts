import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Endpoint } from '../core/broker-api/index.ts';
import { encodeRequest } from '../gateway/nat-probe.ts';
import { parseProbeReply, portFindings, probeAddresses, probeCommand, type PortProbe } from './diagnose-ports.ts';

const endpoint = (id: string, priv: string, pub: string, natProbe = true): Endpoint => ({
  cluster_id: id, hostname: `${id}-n1`, private_ip: priv, public_ip: pub, cable_driver: 'wireguard', backend_config: {}, health_check_ip: '', observed_source_ip: '',
  ports: [{ name: 'wireguard', port: 51820, protocol: 'UDP' }, ...(natProbe ? [{ name: 'nat-probe', port: 4490, protocol: 'UDP' }] : [])],
});
/** where a gateway's probes come from: its own address, or c3's NAT router */
const SOURCE: Record<string, string> = { c1: '172.29.0.11', c2: '172.29.0.21', c3: '172.29.0.30' };
const probe = (from: string, to: string, answered: boolean): PortProbe => ({ from, to, target: `${to}-ip:4490`, answered, ...(answered ? { seenAs: `${SOURCE[from] ?? '?'}:40000` } : {}) });

test('addresses to probe: private, then public when another; none without a nat-probe port', () => {
  assert.equal(probeAddresses(endpoint('c2', '172.29.0.21', '')), [{ ip: '172.29.0.21', port: 4490 }]);
  assert.equal(probeAddresses(endpoint('c3', '10.203.0.2', '172.29.0.30')), [{ ip: '10.203.0.2', port: 4490 }, { ip: '172.29.0.30', port: 4490 }]);
  assert.equal(probeAddresses(endpoint('c2', '172.29.0.21', '172.29.0.21')).length, 1);
  assert.equal(probeAddresses(endpoint('c2', '172.29.0.21', '', false)), []);
});

test('findings per pair: both ways ok; one way ok when the other side is behind NAT, else a warning; neither way a failure naming the ports', () => {
  const eps = new Map([['c1', endpoint('c1', '172.29.0.11', '')], ['c2', endpoint('c2', '172.29.0.21', '')], ['c3', endpoint('c3', '10.203.0.2', '172.29.0.30')]]);
  const f = portFindings([probe('c1', 'c2', true), probe('c2', 'c1', true), probe('c1', 'c3', false), probe('c3', 'c1', true)], eps);
  assert.equal(f.map((x) => `${x.cluster} ${x.verdict}`), ['c1/c2 ok', 'c1/c3 ok']);
  assert.match(f[0]?.detail ?? '', /c1→c2 c2-ip:4490 \(seen as 172\.29\.0\.11:40000\); c2→c1/);
  assert.match(f[1]?.detail ?? '', /c1→c3 c3-ip:4490 did not \(behind NAT: its gateway dials out\)/);
  // c4 publishes no public address, but c1 saw its probe come from the NAT router
  const hidden = new Map([...eps, ['c4', endpoint('c4', '10.204.0.2', '')]]);
  const viaNat = portFindings([{ from: 'c4', to: 'c1', target: '172.29.0.11:4490', answered: true, seenAs: '172.29.0.40:1024' }, probe('c1', 'c4', false)], hidden);
  assert.is(viaNat[0]?.verdict, 'ok');
  assert.match(viaNat[0]?.detail ?? '', /behind NAT/);
  const oneWay = portFindings([probe('c1', 'c2', true), probe('c2', 'c1', false)], eps);
  assert.is(oneWay[0]?.verdict, 'warn');
  assert.match(oneWay[0]?.detail ?? '', /open UDP 51820\/udp, 4490\/udp towards c1's gateway nodes/);
  const none = portFindings([probe('c1', 'c2', false), probe('c2', 'c1', false)], eps);
  assert.is(none[0]?.verdict, 'fail');
  assert.match(none[0]?.detail ?? '', /no UDP between the gateway nodes either way .*open c2: 51820\/udp, 4490\/udp; c1: 51820\/udp, 4490\/udp \(UDP\) between the gateway nodes in firewalls/);
});

test('probe command and reply: the gateway protocol\'s request, our nonce\'s answer only', () => {
  const nonce = 'a'.repeat(32);
  const cmd = probeCommand('172.29.0.21', 4490, nonce, 'c1');
  assert.ok(cmd[2]?.includes(`'${encodeRequest(nonce, 'c1').toString('utf8')}'`));
  assert.match(cmd[2] ?? '', /socat -t 1 -T 1 - 'UDP:172\.29\.0\.21:4490'/);
  assert.is(parseProbeReply(`isthmus-nat/1 seen ${nonce} 172.29.0.11 41234\n`, nonce), '172.29.0.11:41234');
  assert.is(parseProbeReply(`isthmus-nat/1 seen ${'b'.repeat(32)} 172.29.0.11 41234\n`, nonce), undefined, 'another nonce');
  assert.is(parseProbeReply('', nonce), undefined);
  assert.is(parseProbeReply('garbage', nonce), undefined);
});

test.run();
