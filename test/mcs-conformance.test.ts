// e2e, needs root: the upstream MCS API conformance suite (sigs.k8s.io/mcs-api/conformance,
// built by ./setup: scripts/build-mcs-conformance.sh) against the sandbox, real parts only:
// CLUSTERS clusters with real apiservers, controller-managers, CoreDNS and kube-proxy, the
// sandbox kubelet (the suite's `kubectl exec`), wireguard gateways, a route agent on every
// node, a real etcd + broker, and `isthmus mcs` + `isthmus dns` in each cluster (CoreDNS
// forwards clusterset.local to it). The suite runs once, every spec against the same
// sandbox; each of its specs is one test here (its outcome read from Ginkgo's JSON report),
// so the suite's "N passed, N failed" line counts them. A spec that cannot pass here is
// listed in NOT_HERE with the reason, which is printed; none is skipped silently.
// report.yaml / report.html / report.json are kept in $ISTHMUS_ARTIFACTS_DIR (default
// <checkout>/artifacts)/mcs-conformance.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectRoot } from '../sandbox/index.ts';
import { cacheDir } from '../sandbox/versions.ts';
import { eventually, requireRootForTest, run } from './lib/cli.ts';
import { Clusterset } from './lib/clusterset.ts';
import { specOutcomes, type SpecOutcome } from './lib/conformance-report.ts';
import { startMcs, upWithRoutes } from './lib/mcs.ts';

requireRootForTest('test/mcs-conformance.test.ts');

/**
 * Two clusters: the suite exports from the first context and uses the second for every
 * two-cluster spec; a third would only repeat the second's checks (another importing
 * cluster: its request pod, its lookups and connections) for about 1.5 × the time.
 */
const CLUSTERS = ['c1', 'c2'];
/**
 * The whole suite's time limit (Ginkgo's -ginkgo.timeout): well inside scripts/test.sh's
 * 20 minutes per file, so a hung spec still leaves a report (Ginkgo writes it on timeout).
 */
const SUITE_TIMEOUT_MIN = 14;

/** Specs that cannot pass on this sandbox, with the reason (printed; the spec is not run). */
const NOT_HERE = new Map<string, string>();

function binary(): string {
  const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { isthmus?: Record<string, string> };
  const version = pkg.isthmus?.['mcs-conformance'];
  if (version === undefined) throw new Error('package.json has no "isthmus"["mcs-conformance"] pin');
  const bin = process.env['ISTHMUS_MCS_CONFORMANCE'] ?? join(cacheDir(), `mcs-conformance-${version}`, 'mcs-conformance.test');
  if (!existsSync(bin)) throw new Error(`the MCS conformance suite is not built (${bin} is missing): run ./setup, which builds it from ../shared/mcs-conformance`);
  return bin;
}

/** The suite's specs, from a Ginkgo dry run (no cluster touched). */
async function listSpecs(bin: string): Promise<SpecOutcome[]> {
  const dir = mkdtempSync('/tmp/isthmus-mcs-conformance-list-');
  try {
    const r = await run(bin, ['-ginkgo.dry-run', '-ginkgo.no-color', `-ginkgo.json-report=${join(dir, 'report.json')}`], { timeoutMs: 60_000, cwd: dir });
    if (!existsSync(join(dir, 'report.json'))) throw new Error(`${bin} -ginkgo.dry-run wrote no report (${r.code}): ${r.stderr}${r.stdout}`);
    return specOutcomes(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bin = binary();
const specs = await listSpecs(bin);
const cs = new Clusterset();
const metricsPort = (c: string): number => 27590 + Number(c.slice(1));
let ready = false;

test.after(async () => {
  await cs.close();
});

test(`setup: ${CLUSTERS.length} clusters with gateways, route agents, the MCS CRDs, isthmus mcs and isthmus dns in each`, async () => {
  await upWithRoutes(cs, CLUSTERS, 27500);
  for (const c of CLUSTERS) await startMcs(cs, c, { metricsPort: metricsPort(c) });
  for (const c of CLUSTERS) {
    await eventually(`${c}: CoreDNS forwards clusterset.local`, async () => {
      const corefile = await cs.kubectl(c, ['-n', 'kube-system', 'get', 'configmap', 'coredns', '-o', 'jsonpath={.data.Corefile}']);
      return corefile.includes('clusterset.local') ? true : undefined;
    });
  }
  ready = true;
});

let outcome: Promise<Map<string, SpecOutcome>> | undefined;

/** Runs the suite once (the first spec's test starts it; the others read its report). */
function suiteOutcome(): Promise<Map<string, SpecOutcome>> {
  outcome ??= runSuite();
  return outcome;
}

async function runSuite(): Promise<Map<string, SpecOutcome>> {
  if (!ready) throw new Error('the clusterset did not come up (see the setup test)');
  const dir = cs.path('conformance');
  mkdirSync(dir);
  const args = [`-kubeconfig=${cs.kubeconfig}`, `-contexts=${CLUSTERS.join(',')}`, '-ginkgo.v', '-ginkgo.no-color', `-ginkgo.timeout=${SUITE_TIMEOUT_MIN}m`,
    `-ginkgo.json-report=${join(dir, 'report.json')}`, '-organization=Isthmus', '-project=isthmus', '-version=dev'];
  // Ginkgo's full text keeps the empty container texts (several spaces): any run of spaces matches
  for (const name of NOT_HERE.keys()) args.push(`-ginkgo.skip=${escapeRegExp(name).replace(/ /g, '\\s*')}`);
  const started = Date.now();
  const log = openSync(join(dir, 'conformance.log'), 'a');
  const code = await new Promise<number>((resolve, reject) => {
    const p = spawn(bin, args, { cwd: dir, stdio: ['ignore', log, log], env: { ...process.env, KUBECONFIG: cs.kubeconfig } });
    p.on('error', reject);
    p.on('exit', (c, sig) => resolve(c ?? (sig === null ? 1 : 128)));
  });
  const seconds = Math.round((Date.now() - started) / 1000);
  process.stdout.write(`\n  the conformance suite ran ${seconds} s (exit ${code}); log ${join(dir, 'conformance.log')}\n`);
  keepArtifacts(dir);
  if (!existsSync(join(dir, 'report.json'))) {
    throw new Error(`the conformance suite wrote no report (exit ${code}):\n${readFileSync(join(dir, 'conformance.log'), 'utf8').slice(-4000)}`);
  }
  const got = specOutcomes(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')));
  const counts = new Map<string, number>();
  for (const s of got) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
  process.stdout.write(`  specs: ${[...counts].map(([k, v]) => `${v} ${k}`).join(', ')}\n`);
  return new Map(got.map((s) => [s.name, s]));
}

function keepArtifacts(dir: string): void {
  const out = join(process.env['ISTHMUS_ARTIFACTS_DIR'] ?? join(projectRoot(), 'artifacts'), 'mcs-conformance');
  mkdirSync(out, { recursive: true });
  for (const f of ['report.yaml', 'report.html', 'report.json', 'conformance.log']) {
    if (existsSync(join(dir, f))) copyFileSync(join(dir, f), join(out, f));
  }
  process.stdout.write(`  report.yaml, report.html, report.json and the log kept in ${out}\n`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const short = (name: string): string => (name.length > 150 ? `${name.slice(0, 147)}…` : name);

for (const spec of specs) {
  const label = `[${spec.labels.join(',')}] ${short(spec.name)}`;
  const reason = NOT_HERE.get(spec.name);
  if (reason !== undefined) {
    process.stdout.write(`  not run here: ${label}\n    why: ${reason}\n`);
    test.skip(label);
    continue;
  }
  test(label, async () => {
    const got = (await suiteOutcome()).get(spec.name);
    if (got === undefined) throw new Error(`the suite's report has no spec "${spec.name}"`);
    if (got.state !== 'passed') process.stdout.write(`\n  FAILED spec: ${spec.name}\n    ${got.message.split('\n').join('\n    ')}\n`);
    assert.is(got.state, 'passed', `${got.state}: ${got.message}`);
  });
}

test.run();
