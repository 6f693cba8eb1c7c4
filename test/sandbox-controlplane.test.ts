// e2e, needs root: brings up a real 2-cluster sandbox (etcd, kube-apiserver,
// kube-controller-manager per cluster), uses it with kubectl and core's small client
// (kube-lite, what the route agent runs on), then tears it down.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cidrContains, createLogger, ErrorCodes, parseCidr } from '../core/index.ts';
import { LiteInformer, type LiteObject } from '../core/kube-lite-informer.ts';
import { KubeRequestError, KubeRest, loadKubeTarget } from '../core/kube-lite.ts';
import type { SandboxState } from '../sandbox/index.ts';
import { eventually, isthmus, kubectl, requireRootForTest } from './lib/cli.ts';

requireRootForTest('test/sandbox-controlplane.test.ts');
const dir = mkdtempSync('/tmp/isthmus-sbx-');
const env = { ISTHMUS_SANDBOX_DIR: join(dir, 'sandbox') };
const sbx = join(dir, 'sandbox');
const kubeconfig = join(sbx, 'kubeconfig');
const PORT_BASE = '26400';

function state(): SandboxState {
  return JSON.parse(readFileSync(join(sbx, 'state.json'), 'utf8')) as SandboxState;
}

function liveSandboxPids(): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(join(sbx, 'clusters') + '/') && !l.includes(' ps ')).map((l) => Number(l.trim().split(/\s+/)[0]));
}

function links(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '');
}

test.after(async () => {
  await isthmus(['sandbox', 'down'], env);
  execFileSync('rm', ['-rf', dir]);
});

test('up brings up two clusters and prints their kubeconfig', async () => {
  const r = await isthmus(['sandbox', 'up', '--clusters', '2', '--port-base', PORT_BASE], env);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, 'c1, c2');
  assert.match(r.stdout, kubeconfig);
  const path = await isthmus(['sandbox', 'kubeconfig'], env);
  assert.is(path.stdout.trim(), kubeconfig);
  const s = state();
  assert.is(s.phase, 'up');
  assert.is(s.clusters.length, 2);
  const names = s.processes.map((p) => p.name);
  for (const c of ['c1', 'c2']) {
    for (const p of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'sandbox-kubelet', `kube-proxy-${c}-n1`, `kube-proxy-${c}-n2`]) assert.ok(names.includes(`${c}/${p}`), `${c}/${p} is recorded`);
  }
  assert.is(names.length, 12);
});

test('status reports every component healthy', async () => {
  const r = await isthmus(['sandbox', 'status', '--json'], env);
  assert.is(r.code, 0, r.stdout + r.stderr);
  const clusters = JSON.parse(r.stdout) as { name: string; healthy: boolean; components: { name: string; healthy: boolean }[] }[];
  assert.equal(clusters.map((c) => [c.name, c.healthy, c.components.length]), [['c1', true, 6], ['c2', true, 6]]);
  assert.ok(clusters.every((c) => c.components.every((p) => p.healthy)));
});

test('kubectl reaches both clusters; a Deployment and a Service in each', async () => {
  for (const c of state().clusters) {
    const ctx = c.name;
    await kubectl(kubeconfig, ctx, ['create', 'namespace', 'demo']);
    await kubectl(kubeconfig, ctx, ['-n', 'demo', 'create', 'deployment', 'echo', '--image=isthmus/echo:dev', '--replicas=2']);
    await kubectl(kubeconfig, ctx, ['-n', 'demo', 'expose', 'deployment', 'echo', '--port=8080']);
    const ip = (await kubectl(kubeconfig, ctx, ['-n', 'demo', 'get', 'service', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    assert.ok(cidrContains(parseCidr(c.serviceCidr), ip), `${ctx}: ClusterIP ${ip} is not in ${c.serviceCidr}`);
    // the controller-manager's deployment and replicaset controllers make the ReplicaSet and its Pods
    const pods = await eventually(`${ctx} pods`, async () => {
      const out = await kubectl(kubeconfig, ctx, ['-n', 'demo', 'get', 'pods', '-l', 'app=echo', '-o', 'name']);
      const names = out.trim().split('\n').filter(Boolean);
      return names.length === 2 ? names : undefined;
    });
    assert.is(pods.length, 2);
    const rs = await kubectl(kubeconfig, ctx, ['-n', 'demo', 'get', 'replicasets', '-l', 'app=echo', '-o', 'jsonpath={.items[0].status.replicas}']);
    assert.is(rs.trim(), '2');
    // the serviceaccount controllers ran too: every namespace gets its default ServiceAccount
    await eventually(`${ctx} default serviceaccount`, async () => ((await kubectl(kubeconfig, ctx, ['-n', 'demo', 'get', 'serviceaccount', 'default', '-o', 'name'])).includes('default') ? true : undefined));
  }
  // the clusters are separate: c2 does not see c1's objects by name
  const c1Uid = await kubectl(kubeconfig, 'c1', ['get', 'namespace', 'demo', '-o', 'jsonpath={.metadata.uid}']);
  const c2Uid = await kubectl(kubeconfig, 'c2', ['get', 'namespace', 'demo', '-o', 'jsonpath={.metadata.uid}']);
  assert.is.not(c1Uid, c2Uid);
});

test('kube-lite (the node agents\' client): requests with their status codes; list + watch with selectors, index and deletes', async () => {
  const rest = new KubeRest(loadKubeTarget({ kubeconfig, context: 'c1' }));
  assert.is((await rest.json<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/default')).metadata.name, 'default');
  try {
    await rest.json('GET', '/api/v1/namespaces/no-such-namespace');
    assert.unreachable('a missing namespace is found');
  } catch (err) {
    assert.instance(err, KubeRequestError);
    assert.is((err as KubeRequestError).status, 404);
    assert.is((err as KubeRequestError).code, ErrorCodes.NOT_FOUND);
  }
  await kubectl(kubeconfig, 'c1', ['create', 'namespace', 'lite']);
  const cm = (name: string, labels: Record<string, string>, group: string): object => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'lite', labels }, data: { group } });
  await rest.json('POST', '/api/v1/namespaces/lite/configmaps', cm('before', { app: 'lite' }, 'g1'));
  type Cm = LiteObject & { data?: { group?: string } };
  const seen: string[] = [];
  const inf = new LiteInformer<Cm>(rest, {
    name: 'configmaps', path: '/api/v1/namespaces/lite/configmaps', labelSelector: 'app=lite', logger: createLogger({ component: 'test', level: 'warn' }),
    onChange: (k) => seen.push(k), index: (o) => (o as Cm).data?.group ?? '',
  });
  inf.start();
  await inf.synced;
  assert.equal(inf.list('lite').map((o) => o.metadata?.name), ['before']);
  await rest.json('POST', '/api/v1/namespaces/lite/configmaps', cm('after', { app: 'lite' }, 'g1'));
  await rest.json('POST', '/api/v1/namespaces/lite/configmaps', cm('other', { app: 'not-lite' }, 'g1'));
  await eventually('the watch delivers the new object', async () => (inf.get('lite', 'after') !== undefined ? true : undefined), 20_000);
  assert.equal(inf.byIndex('g1').map((o) => o.metadata?.name).sort(), ['after', 'before']);
  assert.is(inf.get('lite', 'other'), undefined, 'the label selector is applied');
  await rest.json('PUT', '/api/v1/namespaces/lite/configmaps/after', cm('after', { app: 'lite' }, 'g2'));
  await eventually('the update moves it to index g2', async () => (inf.byIndex('g2').length === 1 ? true : undefined), 20_000);
  assert.equal(inf.byIndex('g1').map((o) => o.metadata?.name), ['before']);
  await rest.json('DELETE', '/api/v1/namespaces/lite/configmaps/before');
  await eventually('the delete reaches the cache', async () => (inf.get('lite', 'before') === undefined ? true : undefined), 20_000);
  assert.equal(inf.byIndex('g1'), []);
  assert.ok(seen.includes('lite/before') && seen.includes('lite/after'));
  assert.not.ok(seen.includes('lite/other'));
  await inf.stop();
  await kubectl(kubeconfig, 'c1', ['delete', 'namespace', 'lite', '--wait=false']);
});

test('up while up says so and changes nothing', async () => {
  const before = state();
  const r = await isthmus(['sandbox', 'up', '--clusters', '2', '--port-base', PORT_BASE], env);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, 'already up');
  assert.equal(state().processes, before.processes);
});

test('a crashed apiserver shows in status', async () => {
  const api = state().processes.find((p) => p.name === 'c2/kube-apiserver');
  assert.ok(api);
  process.kill(api.pid, 'SIGKILL');
  const r = await eventually('status to notice', async () => {
    const s = await isthmus(['sandbox', 'status'], env);
    return s.stdout.includes('not running') ? s : undefined;
  }, 15_000);
  assert.is(r.code, 1);
  assert.match(r.stdout, /c2\s+UNHEALTHY/);
  assert.match(r.stdout, /kube-apiserver\s+pid \d+\s+not running/);
  assert.match(r.stdout, /c1\s+healthy/);
});

test('down removes every process, interface and file', async () => {
  assert.ok(liveSandboxPids().length > 0);
  const r = await isthmus(['sandbox', 'down'], env);
  assert.is(r.code, 0, r.stderr);
  assert.equal(liveSandboxPids(), []);
  assert.not.ok(links().includes('isb-c1'));
  assert.not.ok(links().includes('isb-c2'));
  assert.not.ok(existsSync(sbx), `${sbx} still exists`);
  const again = await isthmus(['sandbox', 'down'], env);
  assert.match(again.stdout, 'nothing to do');
});

test.run();
