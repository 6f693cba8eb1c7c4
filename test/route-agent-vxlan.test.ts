// e2e, needs root: the route agent and the data path with the vxlan cable driver on the sandbox
// (3 clusters × 3 nodes, two gateway nodes each, none behind NAT: see below; real apiservers and kube-proxy,
// etcd + broker, gateways and route agents with their RBAC's tokens). The wireguard file covers
// failover, restarts, bad input, vxlan mode and the iptables backend; this one the data path.
import { test } from 'uvu';
import { requireRootForTest } from './lib/cli.ts';
import { Datapath, dataPathTests } from './lib/datapath.ts';

requireRootForTest('test/route-agent-vxlan.test.ts');
const dp = new Datapath();

test.after(async () => {
  await dp.close();
});

// VXLAN has no NAT traversal (a NAT router forwards no unsolicited UDP 4789 to the gateway
// behind it), so this clusterset has no cluster behind NAT; wireguard and ipsec cover NAT.
dataPathTests(test, dp, 'vxlan', { nat: [] });

test.run();
