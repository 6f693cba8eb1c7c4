// e2e, needs root: the operator's commands on a joined clusterset of the sandbox, as a user runs
// them — two clusters of three nodes, two of them gateway nodes (active/passive), joined with
// `broker deploy` and `join --wait`, so every part runs from deploy/ as pods. `verify
// --disruptive` drains the active gateway node of each cluster and measures the outage (with one
// gateway node it is refused before anything is made); `diagnose` compares the clocks and
// probes the gateway ports between the clusters; `benchmark throughput|latency` measures both
// variants pod to pod.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, isthmus, ok, requireRootForTest, sandboxSession } from './lib/cli.ts';

requireRootForTest('test/cli-ops.test.ts');
const { env, f, k, cli, diagnosed, down } = sandboxSession('/tmp/isthmus-cli-ops-');


test.after(down);

test('two clusters with two gateway nodes each, joined', async () => {
  ok(await isthmus(['sandbox', 'up', '--clusters', '2', '--nodes', '3', '--gateways', '2', '--port-base', '27800'], env), 'sandbox up');
  ok(await cli(['broker', 'deploy', '--context', 'c1', '--service-type', 'NodePort', '--node-selector', 'isthmus.dev/gateway-capable=true', '--etcd-storage', 'emptyDir', '--out', f('broker-info.json')]), 'broker deploy');
  ok(await cli(['broker', 'token', '--context', 'c1', '--out', f('c2.json')]), 'token c2');
  ok(await cli(['join', f('broker-info.json'), '--context', 'c1', '--cluster-id', 'c1', '--wait']), 'join c1');
  ok(await cli(['join', f('c2.json'), '--context', 'c2', '--cluster-id', 'c2', '--wait']), 'join c2');
  for (const c of ['c1', 'c2']) {
    const ha = await k(c, ['-n', 'isthmus-system', 'get', 'gateways.isthmus.dev', '-o', 'jsonpath={range .items[*]}{.status.haStatus}{"\\n"}{end}']);
    assert.equal(ha.trim().split('\n').sort(), ['active', 'passive'], `${c}: one active, one passive gateway`);
  }
});

test('verify --disruptive: the active gateway node of c2, then of c1, drained; pod IP and clusterset name answer again; outages in the JUnit report', async () => {
  // each step waits at most 120 s; the process is given enough for every step to, so a failing step is reported and cleaned up, never killed
  const r = await diagnosed(['c1', 'c2'], async () => ok(await cli(['verify', '--context', 'c1', '--tocontext', 'c2', '--disruptive', '--junit', f('verify.xml'), '--timeout', '120'], 900_000), 'verify --disruptive'));
  assert.match(r.stdout, /5 passed, 0 failed/);
  for (const c of ['c2', 'c1']) assert.match(r.stdout, new RegExp(`✓ gateway failover in ${c} \\([\\d.]+ s\\): active ${c}-n\\d → ${c}-n\\d in [\\d.]+ s after ${c}-n\\d was drained \\(cordoned, its gateway pod deleted\\); outage: pod [\\d.]+ [\\d.]+ s, verify\\.isthmus-verify\\.svc\\.clusterset\\.local [\\d.]+ s`));
  process.stdout.write(r.stdout);
  const xml = readFileSync(f('verify.xml'), 'utf8');
  assert.match(xml, /tests="5" failures="0"/);
  assert.match(xml, /name="gateway failover in c2" time="[\d.]+"><system-out>active c2-n\d → c2-n\d in [\d.]+ s after c2-n\d was drained \(cordoned, its gateway pod deleted\); outage: pod/);
  for (const c of ['c1', 'c2']) {
    const ready = await k(c, ['-n', 'isthmus-system', 'get', 'deployment', 'isthmus-gateway', '-o', 'jsonpath={.status.readyReplicas}']);
    assert.is(ready, '2', `${c}: both gateway pods ready again`);
  }
});

test('diagnose: clocks in step and gateway ports answering both ways between c1 and c2, by a probe pod that is gone afterwards; a bad --max-clock-skew refused', async () => {
  type Finding = { cluster: string; check: string; verdict: string; detail: string };
  const notOk = (xs: readonly Finding[]): Finding[] => xs.filter((x) => x.verdict !== 'ok');
  // the test before drained the active gateway node of each cluster: a moment after, a cable
  // may still be reconnecting; the clusterset is given 2 min to settle, and what was not ok is
  // what a failure says
  await diagnosed(['c1', 'c2'], () => eventually('every finding of diagnose --skip-probes ok after the failovers', async () => {
    const bad = notOk(JSON.parse((await cli(['diagnose', '--context', 'c1', '--context', 'c2', '-o', 'json', '--skip-probes'])).stdout) as Finding[]);
    if (bad.length > 0) throw new Error(JSON.stringify(bad));
    return true;
  }, 120_000));
  // with the probes: one more try when a probe went unanswered (a CI run saw c2→c1 miss its
  // three 1 s tries once; the cause was not found), the first try's findings printed
  const r = await eventually('every finding of diagnose ok, probes included', async () => {
    const run = await cli(['diagnose', '--context', 'c1', '--context', 'c2', '-o', 'json']);
    const bad = notOk(JSON.parse(run.stdout) as Finding[]);
    if (bad.length === 0) return run;
    process.stdout.write(`diag: diagnose not ok yet: ${JSON.stringify(bad)}\n`);
    throw new Error(`not ok: ${JSON.stringify(bad)}`);
  }, 150_000);
  const findings = JSON.parse(r.stdout) as Finding[];
  assert.is(r.code, 0);
  const clock = findings.find((x) => x.check === 'clock skew');
  assert.is(clock?.cluster, 'c1/c2');
  assert.match(clock?.detail ?? '', /apiserver clocks within [\d.]+ s/);
  const ports = findings.find((x) => x.check === 'gateway ports');
  assert.match(ports?.detail ?? '', /UDP answered: c1→c2 [\d.]+:4490 \(seen as [\d.]+:\d+\); c2→c1 [\d.]+:4490/, JSON.stringify(ports));
  for (const c of ['c1', 'c2']) await eventually(`${c}: probe namespace gone`, async () => ((await k(c, ['get', 'namespace', 'isthmus-diagnose', '--ignore-not-found', '-o', 'name'])).trim() === '' ? true : undefined), 90_000);
  const skipped = JSON.parse(ok(await cli(['diagnose', '--context', 'c1', '--context', 'c2', '-o', 'json', '--skip-probes']), 'diagnose --skip-probes').stdout) as { check: string }[];
  assert.not.ok(skipped.some((x) => x.check === 'gateway ports'));
  const bad = await cli(['diagnose', '--context', 'c1', '--max-clock-skew', '0.5']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /--max-clock-skew must be seconds, at least 1/);
});

test('the broker\'s pods leave the node of broker-info\'s first address: c2 keeps using the broker through the other (issue 13)', () => diagnosed(['c1', 'c2'], async () => {
  const brokers = (JSON.parse(readFileSync(f('broker-info.json'), 'utf8')) as { brokers: string[] }).brokers;
  assert.is(brokers.length, 2, 'a NodePort address for each gateway node of c1');
  for (const cm of ['isthmus-gateway', 'isthmus-mcs']) assert.is(await k('c2', ['-n', 'isthmus-system', 'get', 'configmap', cm, '-o', 'jsonpath={.data.BROKER}']), brokers.join(','), `${cm}: every address`);
  const nodes = JSON.parse(await k('c1', ['get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string }; status: { addresses: { type: string; address: string }[] } }[] };
  const host = (brokers[0] ?? '').replace(/:\d+$/, '');
  const first = nodes.items.find((n) => n.status.addresses.some((a) => a.type === 'ExternalIP' && a.address === host))?.metadata.name ?? '';
  assert.ok(first !== '', `the node of ${host}`);
  const brokerPods = async (): Promise<string[]> => (await k('c1', ['-n', 'isthmus-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=isthmus-broker',
    '-o', 'jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{"\\n"}{end}'])).trim().split('\n').filter((l) => l !== '');
  const svc = (name: string): string => JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } },
    { apiVersion: 'multicluster.x-k8s.io/v1alpha1', kind: 'ServiceExport', metadata: { name, namespace: 'default' } },
  ] });
  await k('c1', ['cordon', first]);
  try {
    await k('c1', ['-n', 'isthmus-system', 'delete', 'pod', '-l', 'app.kubernetes.io/name=isthmus-broker', '--field-selector', `spec.nodeName=${first}`, '--wait=false']);
    await eventually(`both broker pods running, none on ${first}`, async () => {
      const pods = await brokerPods();
      return pods.length === 2 && pods.every((p) => !p.startsWith(`${first} `) && p.trim().endsWith('Running')) ? true : undefined;
    }, 180_000);
    // the MCS controller of c2 (pod network) and its gateway (host network) reach the broker through the second address
    await k('c2', ['apply', '-f', '-'], svc('moved'));
    await eventually('c2\'s export of default/moved imported in c1', async () => ((await k('c1', ['-n', 'default', 'get', 'serviceimports.multicluster.x-k8s.io', 'moved', '--ignore-not-found', '-o', 'name'])).trim() !== '' ? true : undefined), 120_000);
    const diag = JSON.parse((await cli(['diagnose', '--context', 'c2', '-o', 'json', '--skip-probes'])).stdout) as { cluster: string; check: string; verdict: string; detail: string }[];
    const addresses = diag.find((x) => x.check === 'broker addresses');
    assert.is(addresses?.verdict, 'warn', JSON.stringify(diag));
    assert.match(addresses?.detail ?? '', new RegExp(`only ${(brokers[1] ?? '').replace(/\./g, '\\.')} answers`));
    const reachable = diag.find((x) => x.check === 'reachable');
    assert.is(reachable, undefined, 'diagnose itself reached the broker');
  } finally {
    await k('c1', ['uncordon', first]);
    await k('c2', ['delete', '-f', '-', '--ignore-not-found'], svc('moved'));
  }
}));

test('benchmark throughput and latency: both variants measured pod to pod across the cable, its pods gone afterwards', async () => {
  const t = JSON.parse(ok(await cli(['benchmark', 'throughput', '--context', 'c1', '--tocontext', 'c2', '--duration', '2', '-o', 'json'], 600_000), 'benchmark throughput').stdout) as Record<string, string>[];
  assert.equal(t.map((r) => r['variant']), ['gateway node → gateway node', 'non-gateway node → non-gateway node']);
  for (const r of t) {
    assert.ok(Number(r['mbit/s']) > 0, JSON.stringify(r));
    assert.match(r['client'] ?? '', /^c1\/c1-n\d$/);
    assert.match(r['server'] ?? '', /^c2\/c2-n\d$/);
  }
  assert.is(t[1]?.['client'], 'c1/c1-n3', 'the non-gateway variant runs on the node without a gateway');
  const l = JSON.parse(ok(await cli(['benchmark', 'latency', '--context', 'c1', '--tocontext', 'c2', '--count', '20', '-o', 'json'], 600_000), 'benchmark latency').stdout) as Record<string, string>[];
  assert.equal(l.map((r) => `${r['variant']} ${r['round-trip']} ${r['samples']} ${r['note']}`), [
    'gateway node → gateway node TCP connect 20 ', 'gateway node → gateway node HTTP request 20 ',
    'non-gateway node → non-gateway node TCP connect 20 ', 'non-gateway node → non-gateway node HTTP request 20 ',
  ]);
  for (const r of l) assert.ok(Number(r['p50-ms']) > 0 && Number(r['p50-ms']) <= Number(r['p99-ms']), JSON.stringify(r));
  for (const c of ['c1', 'c2']) await eventually(`${c}: benchmark namespace gone`, async () => ((await k(c, ['get', 'namespace', 'isthmus-benchmark', '--ignore-not-found', '-o', 'name'])).trim() === '' ? true : undefined), 90_000);
});

test('verify --disruptive with one gateway node: refused with what to do, nothing made', async () => {
  await k('c2', ['label', 'node', 'c2-n2', 'isthmus.dev/gateway-capable-']);
  const r = await cli(['verify', '--context', 'c1', '--tocontext', 'c2', '--disruptive']);
  assert.is(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /c2 has 1 gateway node \(c2-n1\), so its gateway cannot fail over; label a second node and join again .*--gateway-nodes c2-n1,NODE/);
  assert.is((await k('c1', ['get', 'namespace', 'isthmus-verify', '--ignore-not-found', '-o', 'name'])).trim(), '');
  await k('c2', ['label', 'node', 'c2-n2', 'isthmus.dev/gateway-capable=true']);
});

test('uninstall keeps the broker the members use until --broker; then a broker on a 3-member etcd serves through the loss of a member', async () => {
  ok(await cli(['uninstall', '--context', 'c2']), 'uninstall c2');
  const kept = ok(await cli(['uninstall', '--context', 'c1']), 'uninstall c1');
  assert.match(kept.stdout, /the broker stays in isthmus-system \(uninstall --broker removes it/);
  assert.is((await k('c1', ['-n', 'isthmus-system', 'get', 'deployment', 'isthmus-broker', '-o', 'name'])).trim(), 'deployment.apps/isthmus-broker');
  const gone = ok(await cli(['uninstall', '--context', 'c1', '--broker']), 'uninstall c1 --broker');
  assert.match(gone.stdout, /namespace isthmus-system with the broker and etcd removed/);
  assert.is((await k('c1', ['get', 'namespace', 'isthmus-system', '--ignore-not-found', '-o', 'name'])).trim(), '');
  assert.not.match(await k('c1', ['get', 'crd', '-o', 'name']), /isthmus\.dev|multicluster\.x-k8s\.io/);

  const deployed = ok(await cli(['broker', 'deploy', '--context', 'c1', '--service-type', 'NodePort', '--node-selector', 'isthmus.dev/gateway-capable=true', '--etcd-members', '3', '--etcd-storage', 'emptyDir', '--out', f('broker3.json')], 600_000), 'broker deploy, 3 etcd members');
  assert.match(deployed.stdout, /with --etcd-storage emptyDir a member whose pod is replaced comes back empty and rejoins from the other two; losing two at once loses the broker's data; use --etcd-storage pvc/);
  const members = async (): Promise<string[]> => (await k('c1', ['-n', 'isthmus-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=isthmus-etcd', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[0].ready}{"\\n"}{end}'])).trim().split('\n').sort();
  assert.equal(await members(), ['isthmus-etcd-0 true', 'isthmus-etcd-1 true', 'isthmus-etcd-2 true']);
  ok(await cli(['broker', 'token', '--context', 'c1', '--out', f('c2-3.json')]), 'token c2');
  ok(await cli(['join', f('broker3.json'), '--context', 'c1', '--cluster-id', 'c1', '--wait']), 'join c1');
  // one member gone (its pod deleted and, while it is away, the others keep quorum): c2 joins
  await k('c1', ['-n', 'isthmus-system', 'delete', 'pod', 'isthmus-etcd-1', '--wait=false']);
  ok(await cli(['join', f('c2-3.json'), '--context', 'c2', '--cluster-id', 'c2', '--wait'], 600_000), 'join c2 with a member of etcd gone');
  const nets = JSON.parse(ok(await cli(['show', 'networks', '--context', 'c2', '-o', 'json']), 'show networks').stdout) as { cluster: string }[];
  assert.equal(nets.map((c) => c.cluster).sort(), ['c1', 'c2']);
  // the replaced member came back empty and rejoined (broker etcd-bootstrap): a started voting member again, with the data
  const etcdApi = async (member: string, path: string, body: object): Promise<string> =>
    k('c1', ['-n', 'isthmus-system', 'exec', 'deploy/isthmus-broker', '-c', 'broker', '--', 'curl', '-s', '--max-time', '5', '-X', 'POST', `http://${member}.isthmus-etcd:2379${path}`, '-d', JSON.stringify(body)]);
  const ids = ['isthmus-etcd-0', 'isthmus-etcd-1', 'isthmus-etcd-2'];
  await eventually('isthmus-etcd-1 back: 3 started voting members, each healthy', async () => {
    const list = JSON.parse(await etcdApi('isthmus-etcd-0', '/v3/cluster/member/list', {})) as { members?: { name?: string; clientURLs?: string[]; isLearner?: boolean }[] };
    const voters = (list.members ?? []).filter((m) => (m.clientURLs ?? []).length > 0 && m.isLearner !== true).map((m) => m.name ?? '').sort();
    if (voters.join() !== ids.join() || (list.members ?? []).length !== 3) return undefined;
    for (const m of ids) if (!/"health":\s*"true"/.test(await k('c1', ['-n', 'isthmus-system', 'exec', 'deploy/isthmus-broker', '-c', 'broker', '--', 'curl', '-s', '--max-time', '5', `http://${m}.isthmus-etcd:2379/health`]))) return undefined;
    return true;
  }, 300_000);
  assert.equal(await members(), ['isthmus-etcd-0 true', 'isthmus-etcd-1 true', 'isthmus-etcd-2 true']);
  assert.match(await k('c1', ['-n', 'isthmus-system', 'logs', 'isthmus-etcd-1', '-c', 'bootstrap']), /rejoining the running cluster/);
  // c2's cluster record, read from the rejoined member's own store (serializable); retried like the
  // health checks above: the sandbox's CoreDNS did not always resolve the member's name at once (curl exit 6)
  const count = async (): Promise<string> => (JSON.parse(await etcdApi('isthmus-etcd-1', '/v3/kv/range', { key: Buffer.from('/isthmus/v1/clusters/c2').toString('base64'), serializable: true })) as { count?: string }).count ?? '0';
  await eventually('the rejoined member to have c2\'s record (count 1)', async () => ((await count()) === '1' ? true : undefined), 60_000);
});

test.run();
