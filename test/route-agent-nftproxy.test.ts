// e2e, needs root: the data path with kube-proxy in its nftables mode (GA since Kubernetes
// 1.33) on every sandbox node, the wireguard driver and the route agents' iptables backend (so
// an iptables rule of ours must get past an nftables kube-proxy: the masquerade mark is
// cleared). kube-proxy's IPVS mode needs the kernel's ip_vs module, which this machine's
// kernel lacks: `sandbox up --proxy-mode ipvs` says so (test/sandbox-bad-input.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireRootForTest } from './lib/cli.ts';
import { Datapath, dataPathTests } from './lib/datapath.ts';
import { inNetns } from './lib/netns.ts';

requireRootForTest('test/route-agent-nftproxy.test.ts');
const dp = new Datapath();

test.after(async () => {
  await dp.close();
});

dataPathTests(test, dp, 'wireguard', { proxyMode: 'nftables' }, ['--filter', 'iptables']);

test('kube-proxy runs in nftables mode on every node', async () => {
  const r = await inNetns(dp.cs.node('c2', 0).netns, 'nft', ['list', 'tables']);
  assert.match(r.stdout, /table ip kube-proxy/);
});

test.run();
