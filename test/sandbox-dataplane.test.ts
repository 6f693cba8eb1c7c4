// e2e, needs root: 3 clusters × 2 nodes (c3 behind NAT) with real packets: pods in
// network namespaces, real kube-proxy, CoreDNS, the wan between gateway nodes, and a
// sandbox kubelet that adopts running pods after a restart.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { echoManifest, type SandboxState } from '../sandbox/index.ts';
import { eventually, isthmus, kubectl, requireRootForTest, run } from './lib/cli.ts';
import { echoFrom, inNetns, linkNames, netnsList } from './lib/netns.ts';

requireRootForTest('test/sandbox-dataplane.test.ts');
const dir = mkdtempSync('/tmp/isthmus-dp-');
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const kc = join(sbx, 'kubeconfig');

function state(): SandboxState {
  return JSON.parse(readFileSync(join(sbx, 'state.json'), 'utf8')) as SandboxState;
}

interface PodInfo {
  name: string;
  node: string;
  ip: string;
  netns: string;
}

function records(cluster: string): { uid: string; name: string; namespace: string; netns: string; node: string; ip: string; containers: { pid?: number }[] }[] {
  const cdir = join(sbx, 'clusters', cluster, 'pods');
  if (!existsSync(cdir)) return [];
  return readdirSync(cdir).flatMap((uid) => {
    try {
      return [JSON.parse(readFileSync(join(cdir, uid, 'record.json'), 'utf8'))];
    } catch {
      return [];
    }
  });
}

async function echoPods(ctx: string): Promise<PodInfo[]> {
  const out = await kubectl(kc, ctx, ['-n', 'demo', 'get', 'pods', '-l', 'app=echo', '-o', 'json']);
  const pods = (JSON.parse(out) as { items: { metadata: { name: string }; spec: { nodeName?: string }; status: { podIP?: string; conditions?: { type: string; status: string }[] } }[] }).items;
  const recs = records(ctx);
  return pods
    .filter((p) => (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'))
    .map((p) => ({ name: p.metadata.name, node: p.spec.nodeName ?? '', ip: p.status.podIP ?? '', netns: recs.find((r) => r.name === p.metadata.name)?.netns ?? '' }));
}

const manifest = echoManifest(3, [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'udp', port: 80, targetPort: 8080, protocol: 'UDP' }]);


test.after(async () => {
  await isthmus(['sandbox', 'down'], env);
  execFileSync('rm', ['-rf', dir]);
});

test('up: 3 clusters × 2 nodes, nodes Ready with pod CIDRs, cluster DNS Ready', async () => {
  const r = await isthmus(['sandbox', 'up', '--clusters', '3', '--nodes', '2', '--nat', 'c3', '--port-base', '26500'], env);
  assert.is(r.code, 0, r.stderr);
  const nodes = JSON.parse(await kubectl(kc, 'c1', ['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> }; spec: { podCIDR?: string }; status: { addresses: { type: string; address: string }[] } }[] };
  assert.equal(nodes.items.map((n) => n.metadata.name).sort(), ['c1-n1', 'c1-n2']);
  for (const n of nodes.items) assert.ok(n.spec.podCIDR?.startsWith('10.1.'), `${n.metadata.name} podCIDR ${n.spec.podCIDR}`);
  assert.is(nodes.items.find((n) => n.metadata.name === 'c1-n1')?.metadata.labels['isthmus.dev/gateway-capable'], 'true');
  assert.is(nodes.items.find((n) => n.metadata.name === 'c1-n2')?.metadata.labels['isthmus.dev/gateway-capable'], undefined);
  assert.is(nodes.items.find((n) => n.metadata.name === 'c1-n2')?.status.addresses.find((a) => a.type === 'InternalIP')?.address, '172.30.1.12');
  const dns = await kubectl(kc, 'c2', ['-n', 'kube-system', 'get', 'pods', '-l', 'k8s-app=kube-dns', '-o', 'jsonpath={.items[*].status.phase}']);
  assert.equal(dns.trim().split(' '), ['Running', 'Running']);
});

test('pods across two nodes reach each other by pod IP and by ClusterIP, TCP and UDP', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], manifest);
  const pods = await eventually('3 ready echo pods', async () => {
    const p = await echoPods('c1');
    return p.length === 3 && p.every((x) => x.netns !== '') ? p : undefined;
  }, 60_000);
  const nodesUsed = new Set(pods.map((p) => p.node));
  assert.is(nodesUsed.size, 2, 'the scheduler spreads the replicas over both nodes');
  const a = pods.find((p) => p.node === 'c1-n1');
  const b = pods.find((p) => p.node === 'c1-n2');
  assert.ok(a && b);
  for (const proto of ['tcp', 'udp'] as const) {
    const direct = await echoFrom(a.netns, proto, b.ip, 8080);
    assert.is(direct['pod'], b.name);
    assert.is(direct['cluster'], 'c1');
    assert.match(String(direct['client']), `${a.ip}:`);
  }
  const clusterIp = (await kubectl(kc, 'c1', ['-n', 'demo', 'get', 'svc', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const seen = new Set<string>();
  for (let i = 0; i < 12; i++) {
    for (const proto of ['tcp', 'udp'] as const) {
      const via = await echoFrom(a.netns, proto, clusterIp, 80);
      seen.add(String(via['pod']));
    }
  }
  assert.ok(seen.size >= 2, `ClusterIP spread over several pods (saw ${[...seen].join(', ')})`);
  // the node reaches pods too
  const node = state().clusters[0]?.nodes[1];
  assert.ok(node);
  assert.is((await echoFrom(node.netns, 'tcp', a.ip, 8080))['pod'], a.name);
});

test('cluster DNS: the Service name resolves to its ClusterIP from a pod', async () => {
  const [a] = await echoPods('c1');
  assert.ok(a);
  const clusterIp = (await kubectl(kc, 'c1', ['-n', 'demo', 'get', 'svc', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const full = await inNetns(a.netns, 'dig', ['+short', '+time=2', '+tries=2', 'echo.demo.svc.cluster.local']);
  assert.is(full.stdout.trim(), clusterIp, full.stderr);
  const short = await inNetns(a.netns, 'dig', ['+short', '+search', '+time=2', '+tries=2', 'echo']);
  assert.is(short.stdout.trim(), clusterIp, 'the pod resolv.conf search path finds the short name');
  const resolv = await inNetns(a.netns, 'cat', ['/etc/resolv.conf']);
  assert.match(resolv.stdout, 'nameserver 10.101.0.10');
  assert.match(resolv.stdout, 'search demo.svc.cluster.local svc.cluster.local cluster.local');
});

test('isthmus sandbox exec runs in the pod and on a node', async () => {
  const [a] = await echoPods('c1');
  assert.ok(a);
  const inPod = await isthmus(['sandbox', 'exec', 'c1', a.name, '-n', 'demo', '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], env);
  assert.is(inPod.code, 0, inPod.stderr);
  assert.match(inPod.stdout, `${a.ip}/32`);
  const onNode = await isthmus(['sandbox', 'exec', 'c1', 'node/c1-n2', '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'], env);
  assert.match(onNode.stdout, '172.30.1.12/24');
  const missing = await isthmus(['sandbox', 'exec', 'c1', 'nope', '--', 'true'], env);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, 'pod default/nope is not running in c1');
});

test('the wan joins the gateway nodes; c3 reaches the others only through its NAT', async () => {
  const s = state();
  const gw = (i: number): string => s.clusters[i]?.nodes[0]?.netns ?? '';
  const server = run('ip', ['netns', 'exec', gw(0), process.execPath, '--no-warnings', 'cli/main.ts', 'sandbox', 'echo', '--ports', '9999'], { timeoutMs: 60_000 });
  try {
    const direct = await eventually('echo on c1-n1', () => echoFrom(gw(1), 'tcp', '172.29.0.11', 9999).catch(() => undefined), 15_000);
    assert.match(String(direct['client']), '172.29.0.12:', 'c2 reaches c1 without translation');
    const natted = await echoFrom(gw(2), 'tcp', '172.29.0.11', 9999);
    assert.match(String(natted['client']), '172.29.0.13:', "c3's traffic leaves with its NAT router's wan address");
    const inside = await inNetns(gw(2), 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'wan0']);
    assert.match(inside.stdout, '172.28.3.10/24', "c3's gateway node itself has only a private address");
    const unreachable = await inNetns(gw(0), 'ping', ['-c', '1', '-W', '1', '172.28.3.10']);
    assert.is.not(unreachable.code, 0, 'the inside of the NAT is not reachable from the wan');
  } finally {
    execFileSync('sh', ['-c', `ip netns pids ${gw(0)} | xargs -r ps -o pid=,args= -p | grep 'sandbox echo --ports 9999' | awk '{print $1}' | xargs -r kill`]);
    await server;
  }
});

test('a restarted kubelet adopts running pods: no namespace leaked or lost, no process restarted', async () => {
  const before = records('c1').map((r) => [r.uid, r.netns, r.ip, r.containers.map((c) => c.pid)]).sort();
  const kubeletRec = state().processes.find((p) => p.name === 'c1/sandbox-kubelet');
  assert.ok(kubeletRec);
  process.kill(kubeletRec.pid, 'SIGKILL');
  const restarted = run(process.execPath, ['--no-warnings', 'cli/main.ts', 'sandbox', 'kubelet', '--cluster-dir', join(sbx, 'clusters', 'c1')], { timeoutMs: 600_000 });
  void restarted;
  await kubectl(kc, 'c1', ['-n', 'demo', 'scale', 'deployment', 'echo', '--replicas=4']);
  await eventually('4 ready pods after the restart', async () => ((await echoPods('c1')).length === 4 ? true : undefined), 60_000);
  const after = records('c1').map((r) => [r.uid, r.netns, r.ip, r.containers.map((c) => c.pid)]).sort();
  for (const b of before) {
    const a = after.find((x) => x[0] === b[0]);
    assert.equal(a, b, `pod ${String(b[0])} kept its namespace, address and process`);
  }
  const podNetns = netnsList().filter((n) => n.startsWith('isb-c1-') && !/-n\d+$/.test(n));
  assert.is(podNetns.length, records('c1').length, 'exactly one namespace per pod');
});

test('deleting the Deployment removes every pod namespace', async () => {
  await kubectl(kc, 'c1', ['-n', 'demo', 'delete', 'deployment', 'echo', '--wait=false']);
  await eventually('pods gone', async () => (records('c1').filter((r) => r.namespace === 'demo').length === 0 && (await echoPods('c1')).length === 0 ? true : undefined), 60_000);
  const left = netnsList().filter((n) => n.startsWith('isb-c1-') && !/-n\d+$/.test(n));
  assert.is(left.length, records('c1').length, `only the kube-system pods' namespaces remain: ${left.join(', ')}`);
});

test('down leaves no namespace, interface, process or file', async () => {
  const r = await isthmus(['sandbox', 'down'], env);
  assert.is(r.code, 0, r.stderr);
  assert.equal(netnsList().filter((n) => n.startsWith('isb-')), []);
  assert.equal(linkNames().filter((n) => n.startsWith('isb')), []);
  assert.equal(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => n.startsWith('isb-')) : [], []);
  const ps = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' });
  assert.not.match(ps, join(sbx, 'clusters'));
  assert.not.match(ps, 'sandbox echo');
  assert.not.ok(existsSync(sbx));
});

test.run();
