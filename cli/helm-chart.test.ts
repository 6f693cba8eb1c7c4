// The Helm chart deploy/helm/isthmus with helm built from its Go module (./setup; no root, no
// network, a few seconds): the chart
// on disk is the one generated from deploy/ (no drift), `helm lint` passes, `helm template`
// renders exactly the objects `isthmus join` applies for the same inputs (kinds, names,
// images, args, every field), an existing Secret replaces the chart's, and bad values get a
// clear error.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { dump, loadAll } from 'js-yaml';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateKeyPair } from '../core/index.ts';
import { CHART_DIR, chartFiles } from './helm-chart.ts';
import { JOIN_CRDS } from './join.ts';
import { IPSEC_SECRET, JOIN_RBAC, POLICY_WORKLOADS, gatewayConfigMap, mcsConfigMap, workload, type JoinSettings } from './join-plan.ts';
import { manifest, opaqueSecret, pick, type Obj } from './kube-apply.ts';
import { projectRoot } from '../sandbox/index.ts';

const root = projectRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; isthmus: Record<string, string> };
const helm = join(process.env['ISTHMUS_CACHE'] ?? '/var/cache/isthmus', `helm-${pkg.isthmus['helm'] ?? ''}`, 'helm');
const chart = join(root, CHART_DIR);
const dir = mkdtempSync('/tmp/isthmus-helm-');
const helmEnv = { HELM_CACHE_HOME: join(dir, 'cache'), HELM_CONFIG_HOME: join(dir, 'config'), HELM_DATA_HOME: join(dir, 'data') };

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const PEM = { caCrt: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n', tlsCrt: '-----BEGIN CERTIFICATE-----\nC1\n-----END CERTIFICATE-----\n', tlsKey: generateKeyPair().keyPem };
const SETTINGS: JoinSettings = {
  clusterId: 'c1', brokers: ['172.29.0.11:30974', '[fd00::11]:30974', 'broker.example.net:7443'], cableDriver: 'ipsec', podCidrs: ['10.1.0.0/16', 'fd00:1::/48'], serviceCidrs: ['10.101.0.0/16'],
  publicIp: '192.0.2.7', natTraversal: true, privateSockets: false, gatewayReplicas: 2, image: 'registry.example/isthmus:0.1.0',
};
const VALUES = {
  clusterId: SETTINGS.clusterId, brokers: SETTINGS.brokers, cableDriver: SETTINGS.cableDriver, podCidrs: SETTINGS.podCidrs, serviceCidrs: SETTINGS.serviceCidrs,
  publicIp: SETTINGS.publicIp, natTraversal: SETTINGS.natTraversal, privateSockets: SETTINGS.privateSockets, gatewayReplicas: SETTINGS.gatewayReplicas,
  image: SETTINGS.image, brokerClient: PEM,
};

function valuesFile(name: string, values: unknown): string {
  const f = join(dir, `${name}.yaml`);
  writeFileSync(f, dump(values));
  return f;
}

interface Run { readonly code: number; readonly stdout: string; readonly stderr: string }
function run(command: string, args: readonly string[], opts: { env: Record<string, string> }): Run {
  const r = spawnSync(command, args, { env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr + (r.error === undefined ? '' : r.error.message) };
}

const template = (values: string, extra: readonly string[] = []): Run =>
  run(helm, ['template', 'isthmus', chart, '--namespace', 'isthmus-system', '-f', values, ...extra], { env: helmEnv });

/** What `isthmus join` applies for these settings (cli/join.ts, apply()), in its order. */
async function joinObjects(s: JoinSettings = SETTINGS): Promise<Obj[]> {
  const gw = await manifest('gateway/deployment.yaml');
  const mcs = await manifest('mcs-api/deployment.yaml');
  const mcsConfig = mcsConfigMap(pick(mcs, 'ConfigMap', 'isthmus-mcs'), s);
  return [
    ...await manifest('namespace.yaml'),
    ...(await Promise.all(JOIN_CRDS.map((c) => manifest(`crds/${c}.json`)))).flat(),
    ...(await Promise.all(JOIN_RBAC.map((f) => manifest(f)))).flat(),
    opaqueSecret('isthmus-broker-client', 'isthmus-system', { 'tls.key': PEM.tlsKey, 'tls.crt': PEM.tlsCrt, 'ca.crt': PEM.caCrt }),
    { apiVersion: 'about.k8s.io/v1alpha1', kind: 'ClusterProperty', metadata: { name: 'cluster.clusterset.k8s.io' }, spec: { value: s.clusterId } },
    gatewayConfigMap(pick(gw, 'ConfigMap', 'isthmus-gateway'), s), mcsConfig,
    workload(pick(gw, 'Deployment', 'isthmus-gateway'), s),
    ...(await manifest('route-agent/daemonset.yaml')).map((o) => workload(o, s)),
    ...mcs.filter((x) => x.kind !== 'ConfigMap').map((o) => (o.kind === 'Deployment' ? workload(o, s) : o)),
    ...(await Promise.all(POLICY_WORKLOADS.map((f) => manifest(f)))).flat().map((o) => workload(o, s)),
  ];
}

const key = (o: Obj): string => `${o.kind ?? ''}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
const byKey = (objs: readonly Obj[]): Obj[] => [...objs].map((o) => JSON.parse(JSON.stringify(o)) as Obj).sort((a, b) => key(a).localeCompare(key(b)));
const rendered = (text: string): Obj[] => (loadAll(text) as (Obj | null)[]).filter((o): o is Obj => o !== null);

function filesUnder(d: string): string[] {
  return readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? filesUnder(join(d, n)) : [join(d, n)]));
}

test('helm is built (./setup) and the chart on disk is the one generated from deploy/', async () => {
  assert.ok(existsSync(helm), `${helm} is missing: run ./setup`);
  const want = await chartFiles(pkg.version);
  const have = filesUnder(chart).map((f) => relative(chart, f)).sort();
  assert.equal(have, [...want.keys()].sort(), 'the chart\'s files differ: run node scripts/helm-chart.ts');
  for (const [path, text] of want) assert.is(readFileSync(join(chart, path), 'utf8'), text, `${path} differs from deploy/: run node scripts/helm-chart.ts`);
});

test('helm lint passes', async () => {
  const r = run(helm, ['lint', chart, '--strict', '-f', valuesFile('lint', VALUES)], { env: helmEnv });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, '1 chart(s) linted, 0 chart(s) failed');
});

test('helm template renders exactly what join applies for the same inputs', async () => {
  const r = template(valuesFile('same', VALUES), ['--include-crds']);
  assert.is(r.code, 0, r.stderr);
  const got = byKey(rendered(r.stdout));
  const want = byKey(await joinObjects());
  assert.equal(got.map(key), want.map(key));
  for (const [i, o] of want.entries()) assert.equal(got[i], o, `${key(o)} differs from what join applies`);
  const images = got.flatMap((o) => ((o.spec as { template?: { spec: { containers: { image: string }[] } } } | undefined)?.template?.spec.containers ?? []).map((c) => c.image));
  assert.equal([...new Set(images)], [SETTINGS.image]);
  assert.is(images.length, 6, 'gateway, route agent, mcs, dns, policy controller, policy agent');
});

test('podBroker (the cluster that runs the broker): pods dial it, gateways keep broker, as join does', async () => {
  const podBroker = '10.101.0.20:7443';
  const r = template(valuesFile('pod-broker', { ...VALUES, podBroker }), ['--include-crds']);
  assert.is(r.code, 0, r.stderr);
  const got = byKey(rendered(r.stdout));
  const want = byKey(await joinObjects({ ...SETTINGS, podBroker }));
  for (const [i, o] of want.entries()) assert.equal(got[i], o, `${key(o)} differs from what join applies`);
  const data = (name: string): Record<string, string> | undefined => (got.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === name) as { data?: Record<string, string> } | undefined)?.data;
  assert.equal([data('isthmus-gateway')?.['BROKER'], data('isthmus-gateway')?.['POD_BROKER'], data('isthmus-mcs')?.['BROKER']], [SETTINGS.brokers.join(','), podBroker, podBroker]);
});

test('brokers: every address in BROKER as one comma list; older values\' single broker still renders', async () => {
  const data = (text: string, name: string): Record<string, string> | undefined => (rendered(text).find((o) => o.kind === 'ConfigMap' && o.metadata?.name === name) as { data?: Record<string, string> } | undefined)?.data;
  const r = template(valuesFile('brokers', VALUES));
  assert.is(r.code, 0, r.stderr);
  assert.equal([data(r.stdout, 'isthmus-gateway')?.['BROKER'], data(r.stdout, 'isthmus-gateway')?.['POD_BROKER'], data(r.stdout, 'isthmus-mcs')?.['BROKER']],
    ['172.29.0.11:30974,[fd00::11]:30974,broker.example.net:7443', '172.29.0.11:30974,[fd00::11]:30974,broker.example.net:7443', '172.29.0.11:30974,[fd00::11]:30974,broker.example.net:7443']);
  const { brokers: _, ...old } = VALUES;
  const legacy = template(valuesFile('legacy-broker', { ...old, broker: '172.29.0.11:30974' }));
  assert.is(legacy.code, 0, legacy.stderr);
  assert.equal([data(legacy.stdout, 'isthmus-gateway')?.['BROKER'], data(legacy.stdout, 'isthmus-mcs')?.['BROKER']], ['172.29.0.11:30974', '172.29.0.11:30974']);
});

test('brokerClient.existingSecret: no Secret of the chart, and the pods mount the named one', async () => {
  const r = template(valuesFile('existing', { ...VALUES, brokerClient: { existingSecret: 'my-broker-client' } }));
  assert.is(r.code, 0, r.stderr);
  const objs = rendered(r.stdout);
  assert.not.ok(objs.some((o) => o.kind === 'Secret'));
  const mounts = objs.filter((o) => o.kind === 'Deployment').flatMap((o) => ((o.spec as { template: { spec: { volumes?: { secret?: { secretName: string } }[] } } }).template.spec.volumes ?? []).flatMap((v) => (v.secret === undefined ? [] : [v.secret.secretName])));
  assert.equal(mounts.filter((m) => m !== IPSEC_SECRET), ['my-broker-client', 'my-broker-client', 'my-broker-client'], 'the gateway, the MCS controller and the policy controller');
  assert.equal(mounts.filter((m) => m === IPSEC_SECRET), [IPSEC_SECRET], 'ipsec: the gateway mounts the nodes\' certificates');
  const wg = rendered(template(valuesFile('existing-wg', { ...VALUES, cableDriver: 'wireguard', brokerClient: { existingSecret: 'my-broker-client' } })).stdout);
  assert.not.ok(JSON.stringify(wg).includes(IPSEC_SECRET), 'wireguard: no IPsec Secret mounted');
});

test('bad values: a clear error naming the value', async () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['driver', { ...VALUES, cableDriver: 'gre' }, 'cableDriver'],
    ['id', { ...VALUES, clusterId: 'C_1' }, 'clusterId'],
    ['no-id', { ...VALUES, clusterId: '' }, 'clusterId'],
    ['cidrs', { ...VALUES, podCidrs: [] }, 'podCidrs'],
    ['pod-broker', { ...VALUES, podBroker: '10.101.0.20' }, 'podBroker'],
    ['no-brokers', { ...VALUES, brokers: [] }, 'brokers: give the broker\'s addresses'],
    ['bad-brokers', { ...VALUES, brokers: ['172.29.0.11'] }, 'brokers'],
    ['brokers-string', { ...VALUES, brokers: '172.29.0.11:30974' }, 'brokers'],
    ['typo', { ...VALUES, clusterID: 'c1' }, 'clusterID'],
    ['no-credentials', { ...VALUES, brokerClient: { caCrt: PEM.caCrt } }, 'brokerClient: give caCrt, tlsCrt and tlsKey'],
  ];
  for (const [name, values, message] of cases) {
    const r = template(valuesFile(`bad-${name}`, values));
    assert.is.not(r.code, 0, `${name}: rendered\n${r.stdout}`);
    assert.match(r.stderr, message, name);
  }
});

test.run();
