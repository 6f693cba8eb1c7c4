import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { kubeProxySpec } from './controlplane.ts';
import { planSandbox } from './plan.ts';
import { errorCode } from '../core/testing.ts';

test('distinct CIDRs and ports per cluster by default', () => {
  const plan = planSandbox({ clusters: 3, overlapping: false, portBase: 16400, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 });
  assert.equal(plan.map((c) => c.name), ['c1', 'c2', 'c3']);
  assert.equal(plan.map((c) => c.podCidr), ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16']);
  assert.equal(plan.map((c) => c.serviceCidr), ['10.101.0.0/16', '10.102.0.0/16', '10.103.0.0/16']);
  assert.equal(plan[1]?.apiServiceIp, '10.102.0.1');
  assert.equal(plan.map((c) => c.nodeCidr), ['172.30.1.0/24', '172.30.2.0/24', '172.30.3.0/24']);
  assert.equal(plan.map((c) => [c.bridge, c.hostIp]), [['isb-c1', '172.30.1.1'], ['isb-c2', '172.30.2.1'], ['isb-c3', '172.30.3.1']]);
  const ports = plan.flatMap((c) => Object.values(c.ports));
  assert.is(new Set(ports).size, ports.length);
  assert.equal(plan[2]?.ports, { apiserver: 16420, etcdClient: 16421, etcdPeer: 16422, controllerManager: 16423 });
});

test('overlapping gives every cluster the same CIDRs but its own ports', () => {
  const plan = planSandbox({ clusters: 2, overlapping: true, portBase: 20000, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 });
  assert.equal(plan.map((c) => c.podCidr), ['10.1.0.0/16', '10.1.0.0/16']);
  assert.equal(plan.map((c) => c.serviceCidr), ['10.101.0.0/16', '10.101.0.0/16']);
  assert.is.not(plan[0]?.ports.apiserver, plan[1]?.ports.apiserver);
  assert.is.not(plan[0]?.nodeCidr, plan[1]?.nodeCidr);
});

test('kube-proxy: its own minimum sync period unless one is given (the iptables flag sets it in nftables mode too); a bad one refused', () => {
  const base = { clusters: 1, overlapping: false, portBase: 16400, nodes: 1, gateways: 1, nat: [], nodeCidrMask: 24 };
  const args = (o: object): string[] => {
    const c = planSandbox({ ...base, ...o })[0];
    if (c === undefined || c.nodes[0] === undefined) throw new Error('no plan');
    return kubeProxySpec(c, c.nodes[0], '/kc', '/kube-proxy').args.filter((a) => a.includes('min-sync') || a.startsWith('--proxy-mode'));
  };
  assert.equal(args({}), ['--proxy-mode=iptables']);
  assert.equal(args({ proxyMinSyncMs: 0 }), ['--proxy-mode=iptables', '--iptables-min-sync-period=0ms']);
  assert.equal(args({ proxyMode: 'nftables', proxyMinSyncMs: 100 }), ['--proxy-mode=nftables', '--iptables-min-sync-period=100ms']);
  assert.equal(args({ proxyMode: 'ipvs', proxyMinSyncMs: 100 }), ['--proxy-mode=ipvs', '--ipvs-min-sync-period=100ms']);
  assert.is(errorCode(() => planSandbox({ ...base, proxyMinSyncMs: -1 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ ...base, proxyMinSyncMs: 1.5 })), ErrorCodes.INVALID_ARGUMENT);
});

test('refuses bad counts and port bases', () => {
  assert.is(errorCode(() => planSandbox({ clusters: 0, overlapping: false, portBase: 16400, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ clusters: 17, overlapping: false, portBase: 16400, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ clusters: 1.5, overlapping: false, portBase: 16400, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ clusters: 2, overlapping: false, portBase: 80, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ clusters: 16, overlapping: false, portBase: 65500, nodes: 2, gateways: 1, nat: [], nodeCidrMask: 24 })), ErrorCodes.INVALID_ARGUMENT);
});

test('nodes, the gateway node and the wan, with and without NAT', () => {
  const plan = planSandbox({ clusters: 2, overlapping: false, portBase: 16400, nodes: 3, gateways: 1, nat: ['c2'], nodeCidrMask: 24 });
  const c1 = plan[0];
  const c2 = plan[1];
  assert.equal(c1?.nodes.map((n) => [n.name, n.netns, n.ip, n.gateway]), [
    ['c1-n1', 'isb-c1-n1', '172.30.1.11', true],
    ['c1-n2', 'isb-c1-n2', '172.30.1.12', false],
    ['c1-n3', 'isb-c1-n3', '172.30.1.13', false],
  ]);
  assert.equal(c1?.wan, { ip: '172.29.0.11', hostVeth: 'isbw-c1' });
  assert.equal(c1?.nodes[0]?.wan, { ip: '172.29.0.11', peerVeth: 'isbw-c1' });
  assert.is(c1?.nodes[1]?.wan, undefined);
  assert.equal(c2?.wan.nat, { netns: 'isb-c2-nat', routerInside: '172.28.2.1/24', nodeInside: '172.28.2.10/24' });
  assert.equal(c2?.nodes[0]?.wan, { ip: '172.28.2.10', peerVeth: 'in1' });
  for (const c of plan) for (const n of c.nodes) assert.ok(n.hostVeth.length <= 15, `${n.hostVeth} is too long for an interface name`);
});

test('several gateway nodes: each on the wan, or all on the NAT router\'s inside bridge', () => {
  const plan = planSandbox({ clusters: 16, overlapping: false, portBase: 16400, nodes: 4, gateways: 4, nat: ['c2'], nodeCidrMask: 24 });
  const c1 = plan[0];
  assert.equal(c1?.nodes.map((n) => [n.gateway, n.wan?.ip, n.wan?.peerVeth]), [
    [true, '172.29.0.11', 'isbw-c1'],
    [true, '172.29.0.31', 'isbw-c1-2'],
    [true, '172.29.0.51', 'isbw-c1-3'],
    [true, '172.29.0.71', 'isbw-c1-4'],
  ]);
  assert.equal(plan[1]?.nodes.map((n) => n.wan?.ip), ['172.28.2.10', '172.28.2.11', '172.28.2.12', '172.28.2.13']);
  const wanIps = plan.flatMap((c) => [c.wan.ip, ...c.nodes.flatMap((n) => (n.wan !== undefined && c.wan.nat === undefined ? [n.wan.ip] : []))]);
  assert.is(new Set(wanIps).size, wanIps.length - 15, 'every wan address is unique (a direct first gateway shares the cluster\'s)');
  for (const ip of wanIps) assert.ok(Number(ip.split('.')[3]) < 255 && Number(ip.split('.')[3]) > 1, ip);
  const veths = plan.flatMap((c) => c.nodes.flatMap((n) => (n.wan !== undefined && c.wan.nat === undefined ? [n.wan.peerVeth] : [])));
  assert.is(new Set(veths).size, veths.length);
  for (const v of veths) assert.ok(v.length <= 15, v);
});

test('refuses bad node counts, masks and NAT cluster names', () => {
  const base = { clusters: 2, overlapping: false, portBase: 16400, nodes: 2, gateways: 1, nat: [] as string[], nodeCidrMask: 24 };
  assert.is(errorCode(() => planSandbox({ ...base, nodes: 0 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ ...base, nodeCidrMask: 30 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ ...base, nat: ['c3'] })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ ...base, nat: ['x'] })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ ...base, gateways: 0 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => planSandbox({ ...base, gateways: 3 })), ErrorCodes.INVALID_ARGUMENT, 'more gateways than nodes');
  assert.is(errorCode(() => planSandbox({ ...base, nodes: 8, gateways: 5 })), ErrorCodes.INVALID_ARGUMENT);
});

test.run();
