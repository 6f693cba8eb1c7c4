// Benchmark: ClusterSetNetworkPolicy on one node at the scale — 10,000 remote pods
// (2 remote clusters × 100 namespaces × 50 pods, 5 label sets per namespace) and 100
// policies (one per local namespace, 2 rules each, default Deny), 100 local pods.
//   1. pure: the agent's work per change — validate the mirrored state again (readState),
//      resolve, compile — and the JS heap it holds;
//   2. kernel (root, network namespaces this bench makes and removes), nftables then iptables + ipset: the ruleset applied
//      from nothing, unchanged (no-op), and after one remote pod's label change (the rule
//      update path: set elements updated in place); iperf3 through the enforcing node vs the same path with no table.
//
// usage: node bench/policy.ts [--runs 5] [--iperf-runs 3] [--part pure|kernel|all] [--backend nftables|iptables|both]
//   --iperf-runs: iperf3 samples with and without the table, alternating with-first and without-first
//   (medians compared, and the median of each back-to-back pair's ratio); --iperf-seconds: each sample's length (5);
//   --baseline node (default: conntrack on in both states, as on every Kubernetes node) | bare (no conntrack without the table)
import { spawn } from 'node:child_process';
import { cpus, release } from 'node:os';
import { NetnsRunner, SystemRunner } from '../core/index.ts';
import type { Cluster, IdentitySet, Policy } from '../core/broker-api/index.ts';
import { compile, type LocalPod } from '../policy/compile.ts';
import { resolve } from '../policy/evaluate.ts';
import { IptablesPolicyTable } from '../policy/ipt.ts';
import { NftPolicyTable } from '../policy/nft.ts';
import type { PolicyTable } from '../policy/table.ts';
import { STATE_LABEL, readState, remoteCidrs, stateConfigMaps, type ConfigMapLike, type IdentityMemo } from '../policy/state.ts';
import { policyLab } from '../test/lib/policy-lab.ts';
import { arg, numberArg } from './lib/args.ts';

const runs = numberArg('runs', 5);
const IPERF_RUNS = numberArg('iperf-runs', 3);
const IPERF_SECONDS = numberArg('iperf-seconds', 5);
const baseline = arg('baseline', 'node');
if (baseline !== 'node' && baseline !== 'bare') throw new Error(`--baseline: node or bare, not ${baseline}`);
const part = arg('part', 'all');
const backend = arg('backend', 'both');
if (!['nftables', 'iptables', 'both'].includes(backend)) throw new Error(`--backend: nftables, iptables or both, not ${backend}`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

const clusters: Cluster[] = [1, 2, 3].map((i) => ({ cluster_id: `c${i}`, pod_cidrs: [`10.${i}.0.0/16`], service_cidrs: [], labels: { region: i === 3 ? 'us' : 'eu' }, global_cidr: '' }));
function identities(relabel = false): IdentitySet[] {
  const out: IdentitySet[] = [];
  for (const c of [2, 3]) {
    for (let n = 0; n < 100; n++) {
      const pods = Array.from({ length: 50 }, (_, k) => ({ ip: `10.${c}.${n}.${k + 2}`, name: `p-${n}-${k}`, identity: (k % 5) + 1 }));
      if (relabel && c === 2 && n === 0) pods[0] = { ip: '10.2.0.2', name: 'p-0-0', identity: 2 };
      out.push({ cluster_id: `c${c}`, namespace: `ns${n}`, namespace_labels: { team: `t${n % 10}` }, identities: [1, 2, 3, 4, 5].map((id) => ({ id, labels: { app: `app${id}`, tier: id % 2 === 0 ? 'web' : 'batch' } })), pods });
    }
  }
  return out;
}
const policies: Policy[] = Array.from({ length: 100 }, (_, n) => ({
  cluster_id: 'c1', namespace: `ns${n}`, name: `p${n}`, generation: 1,
  spec: JSON.stringify({
    appliedTo: { podSelector: { matchLabels: { app: 'backend' } } },
    ingress: [
      { name: 'c3-out', priority: 1, action: 'Deny', from: [{ clusters: { selector: { matchLabels: { region: 'us' } } }, namespaceSelector: {} }] },
      { name: 'web', priority: 10, action: 'Allow', from: [{ clusters: { ids: ['c2'] }, namespaceSelector: { matchLabels: { team: `t${n % 10}` } }, podSelector: { matchLabels: { app: 'app1' } } }], ports: [{ port: 8080 }, { port: 5201 }] },
    ],
    default: 'Deny',
  }),
}));
const localPods: LocalPod[] = Array.from({ length: 100 }, (_, n) => ({ ip: n === 0 ? '10.1.0.3' : `10.1.${n}.3`, namespace: `ns${n}`, name: `backend-${n}`, labels: { app: 'backend' } }));
const configMaps = (relabel = false): ConfigMapLike[] => [...stateConfigMaps('c1', clusters, policies, identities(relabel))].map(([name, v]) => ({ metadata: { name, labels: { [STATE_LABEL]: v.kind } }, data: v.data }));

/** Validated identity sets kept between builds, as an agent keeps them. */
const memo: IdentityMemo = new Map();

function build(cms: ConfigMapLike[]): ReturnType<typeof compile> {
  const state = readState('c1', cms, memo);
  if (state.problems.length > 0) throw new Error(state.problems.join('\n'));
  const resolved = resolve({ cluster: 'c1', clusterLabels: new Map(state.clusters.map((c) => [c.cluster_id, c.labels])), namespaces: policies.map((p) => ({ name: p.namespace, labels: {} })), policies: state.policies });
  return compile({ resolved, remoteCidrs: remoteCidrs('c1', state.clusters), localPods, remotePods: state.remotePods });
}

process.stdout.write(`policy bench: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Linux ${release()}, Node ${process.version}, ${new Date().toISOString()}\n`);
const cms = configMaps();
const cmsRelabel = configMaps(true);
if (part === 'pure' || part === 'all') {
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const times: number[] = [];
  let r = build(cms);
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    r = build(i % 2 === 0 ? cmsRelabel : cms);
    times.push(ms(t0));
  }
  global.gc?.();
  const held = (process.memoryUsage().heapUsed - heap0) / 1024 / 1024;
  const stateBytes = cms.reduce((n, c) => n + Object.values(c.data ?? {}).reduce((m, v) => m + v.length, 0), 0);
  process.stdout.write(`pure: readState+resolve+compile median ${median(times).toFixed(1)} ms (n=${runs}); ruleset ${r.rules} rules, ${r.elements} set elements, ${(r.text.length / 1024).toFixed(0)} KiB of nft text; mirrored state ${(stateBytes / 1024 / 1024).toFixed(2)} MiB; heap held after build ${held.toFixed(1)} MiB (run with --expose-gc for a clean figure)\n`);
}

if (part === 'kernel' || part === 'all') {
  const lab = policyLab('pb', 253, ['10.2.0.2']); // c2 ns0 pod 0 (app1): allowed on 5201 by p0's rule "web"
  const NS = lab.ns;
  const sh = lab.sh;
  const server = { kill: (): void => undefined } as { kill: () => void };
  try {
    const runner = new NetnsRunner(new SystemRunner(), NS.node);
    const s = spawn('ip', ['netns', 'exec', NS.pod, 'iperf3', '-s'], { stdio: 'ignore' });
    server.kill = () => s.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const tables = [new NftPolicyTable(runner), new IptablesPolicyTable(runner)] as PolicyTable[];
    for (const table of tables.filter((t) => backend === 'both' || t.name === backend)) {
      const full = build(cms);
      const changed = build(cmsRelabel);
      const fresh: number[] = [];
      const noop: number[] = [];
      const update: number[] = [];
      const outcomes = new Set<string>();
      for (let i = 0; i < runs; i++) {
        await table.cleanup();
        let t0 = process.hrtime.bigint();
        await table.set(full);
        fresh.push(ms(t0));
        t0 = process.hrtime.bigint();
        await table.set(full);
        noop.push(ms(t0));
        t0 = process.hrtime.bigint();
        build(cmsRelabel);
        outcomes.add(await table.set(changed));
        update.push(ms(t0));
        await table.set(full);
      }
      process.stdout.write(`${table.name}: 100 policies, 10,000 remote pods — applied from nothing median ${median(fresh).toFixed(0)} ms; unchanged ${median(noop).toFixed(0)} ms (a read, no change); one label change (state → compile → kernel, ${[...outcomes].join('/')}) median ${median(update).toFixed(0)} ms (n=${runs})\n`);
      const iperf = (): number => {
        const out = JSON.parse(sh(NS.rem, 'iperf3', '-J', '-t', String(IPERF_SECONDS), '-c', '10.1.0.3', '-B', '10.2.0.2')) as { end: { sum_received: { bits_per_second: number } } };
        return out.end.sum_received.bits_per_second / 1e9;
      };
      const withTable: number[] = [];
      const without: number[] = [];
      if (baseline === 'node') {
        // every Kubernetes node tracks connections (kube-proxy's and the CNI's NAT): a NAT chain of
        // another owner, for an address nothing here sends to, turns conntrack on in both states
        sh(NS.node, 'nft', 'add', 'table', 'ip', 'bench-node');
        sh(NS.node, 'nft', 'add', 'chain', 'ip', 'bench-node', 'postrouting', '{ type nat hook postrouting priority srcnat; policy accept; }');
        sh(NS.node, 'nft', 'add', 'rule', 'ip', 'bench-node', 'postrouting', 'ip', 'daddr', '192.0.2.0/24', 'masquerade');
      }
      // with, without, without, with, …: neither side always goes first
      for (let i = 0; i < IPERF_RUNS; i++) {
        for (const on of i % 2 === 0 ? [true, false] : [false, true]) {
          if (on) await table.set(full);
          else await table.cleanup();
          (on ? withTable : without).push(iperf());
        }
      }
      // the path's own throughput drifts on a shared VM (3-10 Gbit/s within minutes): each pair's
      // ratio compares two samples taken back to back, so the drift cancels out
      if (baseline === 'node') sh(NS.node, 'nft', 'delete', 'table', 'ip', 'bench-node');
      const pairs = withTable.map((w, i) => w / (without[i] ?? NaN));
      process.stdout.write(`${table.name}: iperf3 through the node (${IPERF_SECONDS} s each, baseline ${baseline === 'node' ? 'a node that tracks connections' : 'a bare path, no conntrack'}): with the policy table ${median(withTable).toFixed(2)} Gbit/s, without ${median(without).toFixed(2)} Gbit/s; `
        + `ratio of the medians ${(median(withTable) / median(without)).toFixed(2)}, median of the ${pairs.length} back-to-back pairs' ratios ${median(pairs).toFixed(2)} `
        + `(with ${withTable.map((x) => x.toFixed(2)).join(' ')}; without ${without.map((x) => x.toFixed(2)).join(' ')})\n`);
    }
  } finally {
    server.kill();
    lab.cleanup();
  }
}
