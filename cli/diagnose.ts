import { certificateInfo, findOverlap, isIsthmusError, messageOf } from '../core/index.ts';
import type { BrokerClient, Cluster, Endpoint } from '../core/broker-api/index.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { proxyModeOf } from './join-plan.ts';
import { Kube, clusterBrokerClient, secretText, type Obj } from './kube-apply.ts';
import { formatRows } from './show.ts';
import { DEFAULT_SKEW_MS, clockFindings, clockSample, type ClockSample } from './diagnose-clock.ts';
import { PROBE_NS, probeFrom, portFindings, type PortProbe } from './diagnose-ports.ts';

/**
 * `isthmus diagnose --context A [--context B …]`: the clusterset's fsck, read-only. Per
 * cluster: joined, kube-proxy's mode, the CoreDNS stanza, an active gateway with every
 * cable connected, the certificate's expiry, a route agent on every node, the cables'
 * MTU, which of its broker addresses answer; clock skew between the clusters and of nodes (diagnose-clock.ts); at the broker
 * (through the first joined cluster's certificate): CIDR overlaps, endpoints of clusters
 * that are gone, members without a gateway; and gateway ports reachable between the given
 * clusters by probe (diagnose-ports.ts, the one part that makes something: a probe pod,
 * deleted afterwards; --skip-probes leaves it out). Each finding says what to do; the exit
 * code is 1 when any check fails.
 */
const USAGE = 'isthmus diagnose [--context C]… [--kubeconfig F] [-o table|json|yaml] [--max-clock-skew S] [--skip-probes]';
const NS = 'isthmus-system';

export type Verdict = 'ok' | 'warn' | 'fail';
export interface Finding { readonly cluster: string; readonly check: string; readonly verdict: Verdict; readonly detail: string }

interface GatewayObj extends Obj { status?: { haStatus?: string; connections?: { cluster: string; status: string; statusMessage?: string }[] } }
interface RouteAgentObj extends Obj { status?: { remotes?: { cluster: string; mtu?: number }[]; errors?: string[] } }

/** Findings about the broker's records. Pure. */
export function brokerFindings(clusters: readonly Cluster[], endpoints: readonly Endpoint[], globalAddressing: boolean): Finding[] {
  const out: Finding[] = [];
  const ids = new Set(clusters.map((c) => c.cluster_id));
  if (!globalAddressing) {
    for (let i = 0; i < clusters.length; i++) {
      for (let j = i + 1; j < clusters.length; j++) {
        const a = clusters[i] as Cluster;
        const b = clusters[j] as Cluster;
        const hit = findOverlap([...a.pod_cidrs, ...a.service_cidrs], [...b.pod_cidrs, ...b.service_cidrs]);
        if (hit !== undefined) out.push({ cluster: 'broker', check: 'CIDR overlap', verdict: 'fail', detail: `${a.cluster_id} ${hit[0]} overlaps ${b.cluster_id} ${hit[1]}: take one out (\`isthmus uninstall\`) and join it with other CIDRs` });
      }
    }
  }
  for (const e of endpoints) {
    if (!ids.has(e.cluster_id)) out.push({ cluster: 'broker', check: 'stale record', verdict: 'warn', detail: `endpoint ${e.cluster_id}/${e.hostname} of a cluster that is not a member: it expires with its lease; if it stays, its gateway still runs — uninstall that cluster` });
  }
  for (const c of clusters) {
    if (!endpoints.some((e) => e.cluster_id === c.cluster_id)) out.push({ cluster: 'broker', check: 'member without gateway', verdict: 'warn', detail: `${c.cluster_id} publishes no gateway endpoint: check its gateway pods (isthmus show gateways --context ${c.cluster_id})` });
  }
  if (out.length === 0) out.push({ cluster: 'broker', check: 'records', verdict: 'ok', detail: `${clusters.length} members, ${endpoints.length} endpoints, no overlap` });
  return out;
}

interface Joined { readonly kube: Kube; readonly clusterId: string; readonly activeNode?: string }

async function clusterFindings(kube: Kube): Promise<{ findings: Finding[]; client?: BrokerClient; joined?: Joined }> {
  const name = kube.context;
  const f: Finding[] = [];
  const add = (check: string, verdict: Verdict, detail: string): void => void f.push({ cluster: name, check, verdict, detail });
  try {
    add('apiserver', 'ok', `Kubernetes ${(await kube.version()).gitVersion}`);
  } catch (err) {
    add('apiserver', 'fail', messageOf(err));
    return { findings: f };
  }
  const cm = await kube.read('v1', 'ConfigMap', 'isthmus-gateway', NS);
  const secret = await kube.read('v1', 'Secret', 'isthmus-broker-client', NS);
  if (cm === undefined || secret === undefined) {
    add('joined', 'fail', `not joined to a clusterset: run \`isthmus join broker-info.json --context ${name}\``);
    return { findings: f };
  }
  const clusterId = cm.data?.['CLUSTER_ID'] ?? '?';
  add('joined', 'ok', `as ${clusterId}, broker ${(cm.data?.['BROKER'] ?? '?').split(',').join(', ')}`);
  const mode = proxyModeOf((await kube.read('v1', 'ConfigMap', 'kube-proxy', 'kube-system'))?.data?.['config.conf']);
  add('kube-proxy', mode === 'unknown' || mode === 'iptables' || mode === 'nftables' || mode === 'ipvs' ? 'ok' : 'warn', mode === 'unknown' ? 'mode unknown (no kube-system/kube-proxy ConfigMap)' : `mode ${mode}`);
  const corefile = (await kube.read('v1', 'ConfigMap', 'coredns', 'kube-system'))?.data?.['Corefile'];
  add('CoreDNS stanza', corefile?.includes('clusterset.local') === true ? 'ok' : 'fail', corefile?.includes('clusterset.local') === true ? 'clusterset.local forwarded'
    : `kube-system/coredns has no clusterset.local stanza: the MCS controller writes it; check \`kubectl --context ${name} -n ${NS} logs deploy/isthmus-mcs\``);
  try {
    const days = Math.floor((certificateInfo(secretText(secret, 'tls.crt')).notAfter.getTime() - Date.now()) / 86_400_000);
    add('certificate', days < 0 ? 'fail' : days < 30 ? 'warn' : 'ok', days < 30 ? `the broker certificate expires in ${days} days: renew it (\`isthmus certs renew\`) and update Secret ${NS}/isthmus-broker-client` : `valid ${days} more days`);
  } catch (err) {
    add('certificate', 'fail', `Secret ${NS}/isthmus-broker-client holds no usable certificate (${messageOf(err)}): run \`isthmus join\` again`);
  }
  const gws = await kube.list<GatewayObj>('isthmus.dev/v1alpha1', 'Gateway', NS);
  const active = gws.find((g) => g.status?.haStatus === 'active');
  if (active === undefined) add('gateway', 'fail', `no active gateway (${gws.length} reporting): \`kubectl --context ${name} -n ${NS} get pods -l app.kubernetes.io/name=isthmus-gateway\``);
  else {
    const down = (active.status?.connections ?? []).filter((c) => c.status !== 'connected');
    add('gateway', down.length === 0 ? 'ok' : 'fail', down.length === 0 ? `${active.metadata?.name ?? '?'} active, ${(active.status?.connections ?? []).length} cables connected`
      : down.map((c) => `cable to ${c.cluster} ${c.status}${c.statusMessage === undefined ? '' : ` (${c.statusMessage})`}`).join('; ') + ': check that the gateways reach each other on their cable port (UDP), see `isthmus show connections`');
  }
  const nodes = (await kube.core.listNode()).items.map((n) => n.metadata?.name ?? '');
  const agents = await kube.list<RouteAgentObj>('isthmus.dev/v1alpha1', 'RouteAgent', NS);
  const missing = nodes.filter((n) => !agents.some((a) => a.metadata?.name === n));
  add('route agents', missing.length === 0 ? 'ok' : 'fail', missing.length === 0 ? `on all ${nodes.length} nodes` : `no route agent on ${missing.join(', ')}: pods of those nodes cannot reach other clusters; check the DaemonSet isthmus-route-agent's tolerations and pods`);
  const small = agents.flatMap((a) => (a.status?.remotes ?? []).filter((r) => r.mtu !== undefined && r.mtu < 1280).map((r) => `${a.metadata?.name ?? '?'}→${r.cluster} ${r.mtu ?? 0}`));
  if (small.length > 0) add('MTU', 'warn', `path MTU below 1280 (${small.join(', ')}): IPv6 and some TCP stacks suffer; raise the underlay MTU or use another cable driver`);
  const broker = await clusterBrokerClient(kube, 'diagnose', 5_000);
  if (broker !== undefined) f.push(brokerAddressFinding(name, await probeBrokerAddresses(kube, broker.addresses)));
  const joined: Joined = { kube, clusterId, ...(active?.metadata?.name === undefined ? {} : { activeNode: active.metadata.name }) };
  return { findings: f, joined, ...(broker === undefined ? {} : { client: broker.client }) };
}

/** One broker address's answer to a probe: error '' when a List through it alone succeeded. */
export interface AddressProbe { readonly address: string; readonly error: string }

/**
 * What the probes of a member's broker addresses say: ok while two answer (or the one
 * listed does), warn when only one of several does (the broker's NodePort answers only on
 * nodes that run a replica: one more move and the members lose it), fail when none does. Pure.
 */
export function brokerAddressFinding(cluster: string, probes: readonly AddressProbe[]): Finding {
  const up = probes.filter((p) => p.error === '').map((p) => p.address);
  const down = probes.filter((p) => p.error !== '');
  const why = down.map((p) => `${p.address}: ${p.error}`).join('; ');
  const check = 'broker addresses';
  if (up.length === 0) {
    return { cluster, check, verdict: 'fail', detail: `none of the broker's addresses answers (${why}): check that the broker's pods run and that this machine reaches their nodes` };
  }
  if (up.length === 1 && down.length > 0) {
    return { cluster, check, verdict: 'warn', detail: `only ${up[0] ?? ''} answers (${why}): every broker replica runs behind that one address; should they move to a node whose address is not listed, this cluster loses the broker — spread them (kubectl -n ${NS} get pods -o wide in the broker's cluster); after adding nodes run \`isthmus broker deploy\` and \`isthmus join\` again` };
  }
  return { cluster, check, verdict: 'ok', detail: `${up.join(', ')} answer${up.length === 1 ? 's' : ''}${down.length === 0 ? '' : `; ${down.map((p) => p.address).join(', ')} do${down.length === 1 ? 'es' : ''} not (no broker replica on that node)`}` };
}

/** A List through each of the addresses alone, 5 s at most each, all at once. */
async function probeBrokerAddresses(kube: Kube, addresses: readonly string[]): Promise<AddressProbe[]> {
  return Promise.all(addresses.map(async (address) => {
    const b = await clusterBrokerClient(kube, 'diagnose', 0, address);
    if (b === undefined) return { address, error: 'no credentials' };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([b.client.list(['CLUSTER']), new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000);
      })]);
      return { address, error: '' };
    } catch (err) {
      return { address, error: isIsthmusError(err) ? err.message : messageOf(err) };
    } finally {
      clearTimeout(timer);
      b.client.close();
    }
  }));
}

/** Gateway port probes between every pair of the given joined clusters (diagnose-ports.ts). */
async function probeFindings(joined: readonly Joined[], endpoints: readonly Endpoint[]): Promise<Finding[]> {
  const probes: PortProbe[] = [];
  const out: Finding[] = [];
  for (const j of joined) {
    if (j.activeNode === undefined) continue;
    const targets = endpoints.filter((e) => e.cluster_id !== j.clusterId && joined.some((o) => o.clusterId === e.cluster_id));
    try {
      probes.push(...await probeFrom(j.kube, { cluster: j.clusterId, node: j.activeNode }, targets, 60_000));
    } catch (err) {
      out.push({ cluster: j.kube.context, check: 'gateway ports', verdict: 'warn', detail: `the probe pod on ${j.activeNode} did not run (${messageOf(err)}): check that this user may create pods with hostNetwork in ${j.kube.context}, or pass --skip-probes` });
    }
  }
  const last = new Map(endpoints.map((e) => [e.cluster_id, e]));
  return [...out, ...portFindings(probes, last)];
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help', 'skip-probes']));
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n\n  Checks every given cluster and the broker; each finding says what to do. Read-only but for the gateway port\n  probes between the given clusters (a host-network pod on each active gateway node, namespace ${PROBE_NS},\n  deleted afterwards), which --skip-probes leaves out. --max-clock-skew S: warn beyond S seconds between\n  clusters or a node and its apiserver (default ${DEFAULT_SKEW_MS / 1000}).\n`);
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const format = optionRecord(args)['output'] ?? 'table';
  if (format !== 'table' && format !== 'json' && format !== 'yaml') throw usageError(`-o must be table, json or yaml, got ${JSON.stringify(format)}`, USAGE);
  const kubeconfig = optionRecord(args)['kubeconfig'];
  const skewText = optionRecord(args)['maxClockSkew'] ?? String(DEFAULT_SKEW_MS / 1000);
  const maxSkewMs = Number(skewText) * 1000;
  if (!/^\d+(\.\d+)?$/.test(skewText) || maxSkewMs < 1000) throw usageError(`--max-clock-skew must be seconds, at least 1 (the apiservers' Date header counts whole seconds), got ${JSON.stringify(skewText)}`, USAGE);
  const known = new Set(['output', 'kubeconfig', 'context', 'max-clock-skew', 'skip-probes', 'help']);
  for (const k of args.options.keys()) if (!known.has(k)) throw usageError(`unknown option --${k}`, USAGE);
  const contexts = args.options.get('context') ?? [undefined];
  const findings: Finding[] = [];
  let client: BrokerClient | undefined;
  const joined: Joined[] = [];
  const clocks: ClockSample[] = [];
  for (const c of contexts) {
    const r = await clusterFindings(Kube.load(kubeconfig, c)).catch((err: unknown) => ({ findings: [{ cluster: c ?? '(current)', check: 'kubeconfig', verdict: 'fail' as const, detail: messageOf(err) }], client: undefined, joined: undefined }));
    findings.push(...r.findings);
    if (r.joined !== undefined) joined.push(r.joined);
    if (client === undefined) client = r.client;
    else r.client?.close();
  }
  for (const j of joined) {
    const s = await clockSample(j.kube).catch((err: unknown) => {
      findings.push({ cluster: j.kube.context, check: 'clock skew', verdict: 'warn', detail: `could not read the clocks (${messageOf(err)}): check that this user may list Leases in kube-node-lease` });
      return undefined;
    });
    if (s !== undefined) clocks.push(s);
  }
  findings.push(...clockFindings(clocks, maxSkewMs));
  if (client !== undefined) {
    try {
      const records = (await client.list(['CLUSTER', 'ENDPOINT'])).events;
      const clusters = records.filter((e) => e.kind === 'CLUSTER').map((e) => e.record as Cluster);
      const endpoints = records.filter((e) => e.kind === 'ENDPOINT').map((e) => e.record as Endpoint);
      findings.push(...brokerFindings(clusters, endpoints, clusters.some((c) => c.global_cidr !== '')));
      if (!args.options.has('skip-probes') && joined.length > 1) findings.push(...await probeFindings(joined, endpoints));
    } catch (err) {
      findings.push({ cluster: 'broker', check: 'reachable', verdict: 'fail', detail: `${isIsthmusError(err) ? err.message : messageOf(err)}: check that the broker runs and this machine reaches it` });
    } finally {
      client.close();
    }
  }
  process.stdout.write(formatRows({ columns: ['CLUSTER', 'CHECK', 'VERDICT', 'DETAIL'], rows: findings.map((x) => [x.cluster, x.check, x.verdict, x.detail]) }, format));
  return findings.some((x) => x.verdict === 'fail') ? 1 : 0;
}

export const diagnoseCommand: Command = {
  name: 'diagnose',
  run,
};
