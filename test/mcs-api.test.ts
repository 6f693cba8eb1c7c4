// e2e, needs root: the MCS API and clusterset.local DNS on the sandbox, real parts only:
// 3 clusters with real apiservers, CoreDNS and kube-proxy, wireguard gateways (the
// Gateway status tells cluster health), a real etcd + broker, `isthmus mcs` and
// `isthmus dns` for each cluster. Covers: export from two clusters → ServiceImport with a
// clusterset IP, EndpointSlices per source cluster and conditions in every cluster;
// clusterset.local records answered through each cluster's CoreDNS from a pod (dig);
// headless per-pod names; a port conflict on every export; hand edits put back; a
// cluster whose cable is cut has its endpoints marked not ready (and its headless names
// gone), ready again when it is back; ExternalName refused; unexport deletes the imports.
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { echoManifest } from '../sandbox/index.ts';
import { eventually, isthmus, kubectl, requireRootForTest } from './lib/cli.ts';
import { Clusterset, others, type GatewayProc } from './lib/clusterset.ts';
import { installMcsApi, mcsDnsIp, startMcs } from './lib/mcs.ts';

requireRootForTest('test/mcs-api.test.ts');
const cs = new Clusterset();
const CLUSTERS = ['c1', 'c2', 'c3'];
const gateways = new Map<string, GatewayProc>();

interface Condition { type: string; status: string; reason: string }
interface Obj { metadata: { name: string; labels?: Record<string, string>; uid?: string }; spec?: Record<string, unknown>; status?: { conditions?: Condition[]; clusters?: { cluster: string }[] } }
interface Slice extends Obj { addressType: string; ports?: { name?: string; port?: number }[]; endpoints?: { addresses: string[]; hostname?: string; conditions?: { ready?: boolean } }[] }

const getJson = async <T>(c: string, args: string[]): Promise<T> => JSON.parse(await cs.kubectl(c, [...args, '-o', 'json'])) as T;
const serviceImport = (c: string, name: string): Promise<Obj | undefined> => getJson<Obj>(c, ['-n', 'demo', 'get', 'serviceimports.multicluster.x-k8s.io', name]).catch(() => undefined);
const mcsSlices = async (c: string, name: string): Promise<Slice[]> =>
  (await getJson<{ items: Slice[] }>(c, ['-n', 'demo', 'get', 'endpointslices', '-l', `multicluster.kubernetes.io/service-name=${name}`])).items;
const conditions = async (c: string, name: string): Promise<Record<string, string>> => {
  const se = await getJson<Obj>(c, ['-n', 'demo', 'get', 'serviceexports.multicluster.x-k8s.io', name]);
  return Object.fromEntries((se.status?.conditions ?? []).map((x) => [x.type, `${x.status}/${x.reason}`]));
};
const exportOf = (name: string): string => JSON.stringify({ apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceExport', metadata: { name, namespace: 'demo' } });
const dnsIp = (c: string): string => mcsDnsIp(cs, c);
const metricsPort = (c: string): number => 27390 + Number(c.slice(1));
const metrics = async (c: string): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort(c)}/metrics`)).text();

async function dig(c: string, args: string[]): Promise<string> {
  const r = await isthmus(['sandbox', 'exec', c, 'client', '-n', 'demo', '--', 'dig', '@' + kubeDns(c), '+time=2', '+tries=2', ...args], cs.env);
  if (r.code !== 0) throw new Error(`dig ${args.join(' ')} in ${c}: ${r.stderr}`);
  return r.stdout;
}
const kubeDns = (c: string): string => `10.${100 + Number(c.slice(1))}.0.10`;
const short = async (c: string, name: string, type = 'A'): Promise<string[]> => (await dig(c, ['+short', name, type])).trim().split('\n').filter((l) => l !== '').sort();
const status = async (c: string, name: string, type = 'A'): Promise<string> => /status: (\w+)/.exec(await dig(c, [name, type]))?.[1] ?? '?';

function startGateway(c: string): Promise<GatewayProc> {
  return cs.startGateway(c, 0, 'wireguard');
}

test.after(async () => {
  await cs.close();
});

test('setup: 3 clusters with gateways, the MCS CRDs, a ClusterProperty, isthmus dns and isthmus mcs in each', async () => {
  await cs.up({ clusters: 3, gateways: 1, nat: [], portBase: 27300 });
  await installMcsApi(cs, CLUSTERS);
  for (const c of CLUSTERS) gateways.set(c, await startGateway(c));
  for (const c of CLUSTERS) await cs.connected(c, `${c}-n1`, others(c));
  // both run with exactly the rights deploy/mcs-api/rbac.yaml gives them; no --cluster: the id comes from the ClusterProperty
  for (const c of CLUSTERS) await startMcs(cs, c, { metricsPort: metricsPort(c) });
  const client = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: 'demo' }, spec: { containers: [{ name: 'c', image: 'example/client' }] } });
  for (const c of CLUSTERS) {
    await kubectlIn(c, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } }));
    await kubectlIn(c, ['apply', '-f', '-'], client);
  }
  for (const c of CLUSTERS) await cs.kubectl(c, ['-n', 'demo', 'wait', '--for=condition=Ready', 'pod/client', '--timeout=60s']);
});

function kubectlIn(c: string, args: string[], input: string): Promise<string> {
  return kubectl(cs.kubeconfig, c, args, input);
}

test('a Service exported from c2 and c3 is imported in every cluster: clusterset IP, slices per source cluster, conditions', async () => {
  const ports = [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }];
  for (const c of ['c2', 'c3']) {
    await kubectlIn(c, ['apply', '-f', '-'], echoManifest(2, ports));
    await kubectlIn(c, ['apply', '-f', '-'], exportOf('echo'));
  }
  for (const c of CLUSTERS) {
    const si = await eventually(`${c}: ServiceImport echo from c2 and c3`, async () => {
      const s = await serviceImport(c, 'echo');
      return s?.status?.clusters?.length === 2 && ((s.spec?.['ips'] as string[] | undefined)?.length ?? 0) === 1 ? s : undefined;
    });
    assert.equal(si.status?.clusters?.map((x) => x.cluster), ['c2', 'c3']);
    assert.is(si.spec?.['type'], 'ClusterSetIP');
    assert.equal(si.spec?.['ports'], [{ name: 'http', protocol: 'TCP', port: 80 }]);
    const slices = await eventually(`${c}: 2 ready endpoints from each of c2 and c3`, async () => {
      const s = await mcsSlices(c, 'echo');
      const ready = (x: Slice): number => (x.endpoints ?? []).filter((e) => e.conditions?.ready === true).length;
      return s.length === 2 && s.every((x) => ready(x) === 2) ? s : undefined;
    });
    for (const s of slices) {
      assert.is(s.metadata.labels?.['endpointslice.kubernetes.io/managed-by'], 'mcs-controller.isthmus.dev');
      assert.ok(s.metadata.labels?.['kubernetes.io/service-name']?.startsWith('mcs-echo-'));
      assert.equal(s.ports?.map((p) => [p.name, p.port]), [['http', 8080]], 'the pods\' port: importing clusters reach the pods directly');
      const src = s.metadata.labels?.['multicluster.kubernetes.io/source-cluster'] ?? '';
      for (const e of s.endpoints ?? []) assert.ok(e.addresses[0]?.startsWith(`10.${src.slice(1)}.`), `pod IPs of ${src}: ${e.addresses.join(',')}`);
    }
  }
  for (const c of ['c2', 'c3']) {
    assert.equal(await eventually(`${c}: export conditions`, async () => {
      const x = await conditions(c, 'echo');
      return x['Ready'] === 'True/Exported' && x['Conflict'] === 'False/NoConflicts' ? x : undefined;
    }), { Valid: 'True/Valid', Ready: 'True/Exported', Conflict: 'False/NoConflicts' });
    assert.match(await metrics(c), /isthmus_mcs_export_publishes_total [1-9]/);
  }
});

test('clusterset.local from a pod through each cluster\'s CoreDNS: A, SRV, schema TXT, NXDOMAIN vs NODATA', async () => {
  for (const c of CLUSTERS) {
    const corefile = await cs.kubectl(c, ['-n', 'kube-system', 'get', 'configmap', 'coredns', '-o', 'jsonpath={.data.Corefile}']);
    assert.match(corefile, `forward . ${dnsIp(c)}`);
    const ip = ((await serviceImport(c, 'echo'))?.spec?.['ips'] as string[])[0];
    assert.equal(await eventually(`${c}: echo.demo.svc.clusterset.local resolves`, async () => {
      const a = await short(c, 'echo.demo.svc.clusterset.local').catch(() => []);
      return a.length > 0 ? a : undefined;
    }, 90_000), [ip]);
    assert.equal(await short(c, '_http._tcp.echo.demo.svc.clusterset.local', 'SRV'), ['0 100 80 echo.demo.svc.clusterset.local.']);
    assert.equal(await short(c, 'dns-version.clusterset.local', 'TXT'), ['"1.0.0"']);
    assert.is(await status(c, 'nope.demo.svc.clusterset.local'), 'NXDOMAIN');
    assert.is(await status(c, 'echo.demo.svc.clusterset.local', 'AAAA'), 'NOERROR');
    assert.is(await status(c, 'c2.echo.demo.svc.clusterset.local'), 'NXDOMAIN', 'no per-cluster name for a ClusterSetIP Service');
  }
});

test('headless: every ready pod of c2 by <hostname>.<clusterid>.<svc> and in the service name', async () => {
  const headless = JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'demo' }, spec: { clusterIP: 'None', selector: { app: 'echo' }, ports: [{ name: 'pg', port: 8080 }] } });
  await kubectlIn('c2', ['apply', '-f', '-'], headless);
  // through the CLI this time: it waits for Ready
  const exported = await isthmus(['export', 'service', 'db', '-n', 'demo', '--context', 'c2', '--kubeconfig', cs.kubeconfig, '--wait', '--timeout', '60']);
  assert.is(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, 'demo/db: exported');
  const slices = await eventually('c1: db imported with 2 endpoints', async () => {
    const s = await mcsSlices('c1', 'db');
    return s.length === 1 && s[0]?.endpoints?.length === 2 ? s : undefined;
  });
  const si = await serviceImport('c1', 'db');
  assert.is(si?.spec?.['type'], 'Headless');
  const shown = await isthmus(['show', 'imports', '-n', 'demo', '-o', 'json', '--context', 'c1', '--kubeconfig', cs.kubeconfig]);
  assert.is(shown.code, 0, shown.stderr);
  assert.equal((JSON.parse(shown.stdout) as { items: Obj[] }).items.map((x) => x.metadata.name).sort(), ['db', 'echo']);
  const table = await isthmus(['show', 'exports', '-n', 'demo', '--context', 'c2', '--kubeconfig', cs.kubeconfig]);
  assert.match(table.stdout, /demo\s+db\s+True\s+True\s+False\(NoConflicts\)/);
  assert.is(si?.spec?.['ips'], undefined);
  const eps = slices[0]?.endpoints ?? [];
  const addrs = eps.map((e) => e.addresses[0] ?? '').sort();
  assert.equal(await eventually('c1: db resolves to both pods', async () => {
    const a = await short('c1', 'db.demo.svc.clusterset.local').catch(() => []);
    return a.length === 2 ? a : undefined;
  }), addrs);
  for (const e of eps) {
    assert.ok(e.hostname, 'every imported headless endpoint has a hostname');
    const name = `${e.hostname}.c2.db.demo.svc.clusterset.local`;
    const got = await short('c1', name);
    if (got.length === 0) {
      const direct = execFileSync('dig', [`@${dnsIp('c1')}`, '+time=2', '+tries=1', name, 'A'], { encoding: 'utf8' });
      process.stdout.write(`  (diagnostics) through CoreDNS:\n${await dig('c1', [name, 'A'])}\n  isthmus dns directly:\n${direct}\n  slices: ${JSON.stringify(await mcsSlices('c1', 'db'))}\n`);
    }
    assert.equal(got, [e.addresses[0]]);
  }
  const srv = await short('c1', '_pg._tcp.db.demo.svc.clusterset.local', 'SRV');
  assert.is(srv.length, 2);
  for (const r of srv) assert.match(r, /^0 50 8080 .+\.c2\.db\.demo\.svc\.clusterset\.local\.$/);
});

test('a conflicting port on c3: Conflict=True/PortConflict on both exports; the oldest (c2) wins', async () => {
  await cs.kubectl('c3', ['-n', 'demo', 'patch', 'service', 'echo', '--type=json', '-p', '[{"op":"replace","path":"/spec/ports/0/port","value":81}]']);
  for (const c of ['c2', 'c3']) {
    await eventually(`${c}: Conflict=True`, async () => ((await conditions(c, 'echo'))['Conflict'] === 'True/PortConflict' ? true : undefined));
  }
  assert.equal((await serviceImport('c1', 'echo'))?.spec?.['ports'], [{ name: 'http', protocol: 'TCP', port: 80 }]);
  await cs.kubectl('c3', ['-n', 'demo', 'patch', 'service', 'echo', '--type=json', '-p', '[{"op":"replace","path":"/spec/ports/0/port","value":80}]']);
  for (const c of ['c2', 'c3']) {
    await eventually(`${c}: Conflict=False`, async () => ((await conditions(c, 'echo'))['Conflict'] === 'False/NoConflicts' ? true : undefined));
  }
});

test('a ServiceImport or an MCS EndpointSlice edited by hand is put back', async () => {
  await cs.kubectl('c1', ['-n', 'demo', 'patch', 'serviceimports.multicluster.x-k8s.io', 'echo', '--type=merge', '-p', '{"spec":{"sessionAffinity":"ClientIP"}}']);
  await eventually('c1: sessionAffinity back to None', async () => ((await serviceImport('c1', 'echo'))?.spec?.['sessionAffinity'] === 'None' ? true : undefined), 20_000);
  const [s] = await mcsSlices('c1', 'echo');
  assert.ok(s);
  await cs.kubectl('c1', ['-n', 'demo', 'patch', 'endpointslice', s.metadata.name, '--type=json', '-p', '[{"op":"replace","path":"/endpoints/0/conditions/ready","value":false}]']);
  await eventually('c1: the endpoint ready again', async () => {
    const again = (await mcsSlices('c1', 'echo')).find((x) => x.metadata.name === s.metadata.name);
    return again?.endpoints?.[0]?.conditions?.ready === true ? true : undefined;
  }, 20_000);
});

test('c2\'s cable is cut (its gateway node\'s wan link down): c1 marks c2\'s endpoints not ready; ready again when it is back', async () => {
  const wan = (state: 'up' | 'down'): void => {
    execFileSync('ip', ['-n', cs.node('c2', 0).netns, 'link', 'set', 'wan0', state]);
  };
  const ready = async (): Promise<Record<string, boolean>> =>
    Object.fromEntries((await mcsSlices('c1', 'echo')).map((x) => [x.metadata.labels?.['multicluster.kubernetes.io/source-cluster'] ?? '', (x.endpoints ?? []).every((e) => e.conditions?.ready === true)]));
  wan('down');
  try {
    const cut = Date.now();
    assert.equal(await eventually('c1: c2 not ready, c3 ready', async () => {
      const r = await ready();
      return r['c2'] === false ? r : undefined;
    }, 60_000), { c2: false, c3: true });
    process.stdout.write(`  c2's endpoints not ready in c1 ${Date.now() - cut} ms after the cut (the gateway's probes decide when the cable is down)\n`);
    const m = await metrics('c1');
    if (!m.includes('isthmus_mcs_cluster_unhealthy{cluster="c2"} 1')) {
      const gw = await cs.gateway('c1', 'c1-n1');
      process.stdout.write(`  (diagnostics) c1 metrics: ${m.split('\n').filter((l) => l.includes('unhealthy')).join(' | ')}; c1 gateway connections: ${JSON.stringify(gw?.status?.connections?.map((x) => [x.cluster, x.status]))}\n`);
    }
    assert.match(m, 'isthmus_mcs_cluster_unhealthy{cluster="c2"} 1');
    // DNS: a headless name keeps only the healthy clusters' endpoints (db is c2's only)
    assert.is(await status('c1', 'db.demo.svc.clusterset.local'), 'NXDOMAIN');
  } finally {
    wan('up');
  }
  assert.equal(await eventually('c1: c2 ready again', async () => {
    const r = await ready();
    return r['c2'] === true ? r : undefined;
  }, 90_000), { c2: true, c3: true });
  assert.equal((await short('c1', 'db.demo.svc.clusterset.local')).length, 2);
});

test('ExternalName: Valid=False/InvalidServiceType and no ServiceImport', async () => {
  const ext = JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: 'demo' }, spec: { type: 'ExternalName', externalName: 'example.com' } });
  await kubectlIn('c2', ['apply', '-f', '-'], ext);
  await kubectlIn('c2', ['apply', '-f', '-'], exportOf('ext'));
  await eventually('c2: ext invalid', async () => ((await conditions('c2', 'ext'))['Valid'] === 'False/InvalidServiceType' ? true : undefined));
  assert.is(await serviceImport('c1', 'ext'), undefined);
});

test('unexport from both clusters: the ServiceImport, its slices and the derived Service go everywhere', async () => {
  const un = await isthmus(['unexport', 'service', 'echo', '-n', 'demo', '--context', 'c2', '--kubeconfig', cs.kubeconfig]);
  assert.is(un.code, 0, un.stderr);
  const again = await isthmus(['unexport', 'service', 'echo', '-n', 'demo', '--context', 'c2', '--kubeconfig', cs.kubeconfig]);
  assert.is(again.code, 1);
  assert.match(again.stderr, 'is not exported');
  await eventually('c1: echo only from c3', async () => ((await serviceImport('c1', 'echo'))?.status?.clusters?.map((x) => x.cluster).join() === 'c3' ? true : undefined));
  await cs.kubectl('c3', ['-n', 'demo', 'delete', 'serviceexports.multicluster.x-k8s.io', 'echo']);
  for (const c of CLUSTERS) {
    await eventually(`${c}: echo import gone`, async () => ((await serviceImport(c, 'echo')) === undefined && (await mcsSlices(c, 'echo')).length === 0 ? true : undefined));
    const derived = await cs.kubectl(c, ['-n', 'demo', 'get', 'services', '-l', 'isthmus.dev/serviceimport=echo', '-o', 'name']);
    assert.is(derived.trim(), '');
    assert.is(await status(c, 'echo.demo.svc.clusterset.local'), 'NXDOMAIN');
  }
});

test.run();
