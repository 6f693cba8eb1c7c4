import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { bool, int, optionalStr, str, validateConfig } from '../core/index.ts';
import { withoutStanza } from '../mcs-api/corefile.ts';
import { STATE_LABEL as POLICY_STATE_LABEL } from '../policy/state.ts';
import { optionRecord, optionsHelp, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { JOINED_LABEL_ANNOTATION, JOIN_CRDS } from './join.ts';
import { IPSEC_SECRET, JOIN_RBAC, JOIN_WORKLOADS } from './join-plan.ts';
import { Kube, clusterBrokerClient, manifest, waitFor, type Obj } from './kube-apply.ts';

/**
 * `isthmus uninstall --context C`: everything `join` put into a cluster, out again, in an
 * order that leaves nothing behind: the workloads first (so no gateway publishes its
 * endpoint again), then on every node a cleanup pod that removes the route agent's
 * routes, rules and chains, the gateway's cable device and state and the policy agent's
 * table (`isthmus route-agent --cleanup`, `isthmus gateway --cleanup`,
 * `isthmus policy agent --cleanup`: its nftables table and iptables chains), then the cluster's
 * records at the broker (every other cluster drops its cable), the clusterset.local
 * stanza of CoreDNS, the gateway labels join added, the cluster-wide RBAC, the CRDs and
 * the namespace. A cluster that hosts the broker keeps it (and the namespace) unless
 * `--broker`. Idempotent: what is gone already is skipped.
 */
const NS = 'isthmus-system';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const USAGE = 'isthmus uninstall --context C [--broker] [--kubeconfig F]';

const schema = {
  kubeconfig: optionalStr('kubeconfig (default $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('context of the cluster (default: the current one)'),
  broker: bool('also remove the broker and its etcd when this cluster hosts them (default false)', false),
  image: str('the Isthmus image of the cleanup pods (default isthmus:0.1.0)', 'isthmus:0.1.0'),
  timeout: int('seconds to wait for each step (default 120)', 120, 10, 3600),
};

/** The per-node cleanup pod: one container per part that leaves state on a node. Pure. */
export function cleanupPod(node: string, image: string, privateSockets: boolean, cluster: string): Obj {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: `isthmus-cleanup-${node}`.slice(0, 63).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, ''), namespace: NS, labels: { 'app.kubernetes.io/name': 'isthmus-cleanup', 'app.kubernetes.io/part-of': 'isthmus' } },
    spec: {
      nodeName: node, hostNetwork: true, restartPolicy: 'Never', tolerations: [{ operator: 'Exists' }], automountServiceAccountToken: false,
      containers: [
        { name: 'route-agent', image, args: ['route-agent', '--cleanup', `--node=${node}`], securityContext: { capabilities: { add: ['NET_ADMIN'] } } },
        {
          name: 'gateway', image, args: ['gateway', '--cleanup', `--state-dir=/var/lib/isthmus/gateway/${node}`, `--private-sockets=${String(privateSockets)}`],
          securityContext: { capabilities: { add: ['NET_ADMIN'] } }, volumeMounts: [{ name: 'state', mountPath: '/var/lib/isthmus/gateway' }],
        },
        // both backends' (nftables table ip isthmus-policy, iptables chain ISTHMUS-POLICY and its ipsets)
        { name: 'policy-agent', image, args: ['policy', 'agent', '--cleanup', `--cluster=${cluster}`, `--node=${node}`], securityContext: { capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } } },
      ],
      volumes: [{ name: 'state', hostPath: { path: '/var/lib/isthmus/gateway', type: 'DirectoryOrCreate' } }],
    },
  };
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help', 'broker']));
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp(`${USAGE}: takes the cluster out of the clusterset and removes everything of Isthmus from it`, schema));
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const cfg = validateConfig(schema, optionRecord(args), 'uninstall options');
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  const kube = Kube.load(cfg.kubeconfig, cfg.context);
  await kube.version();
  const timeoutMs = cfg.timeout * 1000;
  const gatewayCm = await kube.read('v1', 'ConfigMap', 'isthmus-gateway', NS);
  const hostsBroker = (await kube.read('apps/v1', 'Deployment', 'isthmus-broker', NS)) !== undefined;

  // 1. the workloads, and wait until their pods are gone
  for (const [apiVersion, kind, name] of JOIN_WORKLOADS) await kube.remove(apiVersion, kind, name, NS);
  const ours = `app.kubernetes.io/name in (${[...new Set(JOIN_WORKLOADS.map(([, , name]) => name))].join(',')})`;
  await waitFor('the Isthmus pods gone', timeoutMs, async () => ((await kube.list('v1', 'Pod', NS, ours)).length === 0 ? true : undefined));
  say('✓ gateway, route agents, MCS controller, DNS server, policy controller and policy agents stopped');

  // 2. every node: routes, rules, chains, cable devices, gateway state
  const nodes = (await kube.core.listNode()).items.map((n) => n.metadata?.name ?? '').filter((n) => n !== '');
  if (gatewayCm !== undefined) {
    const privateSockets = gatewayCm.data?.['PRIVATE_SOCKETS'] === 'true';
    const cluster = gatewayCm.data?.['CLUSTER_ID'] ?? 'unknown';
    for (const n of nodes) {
      const pod = cleanupPod(n, cfg.image, privateSockets, cluster);
      await kube.remove('v1', 'Pod', pod.metadata?.name ?? '', NS);
      await waitFor(`the old cleanup pod on ${n} gone`, timeoutMs, async () => ((await kube.read('v1', 'Pod', pod.metadata?.name ?? '', NS)) === undefined ? true : undefined), 250);
      await kube.apply(pod);
    }
    const failed: string[] = [];
    for (const n of nodes) {
      const name = cleanupPod(n, cfg.image, privateSockets, cluster).metadata?.name ?? '';
      const phase = await waitFor(`the cleanup on ${n}`, timeoutMs, async () => {
        const p = await kube.read<Obj & { status?: { phase?: string } }>('v1', 'Pod', name, NS);
        return p?.status?.phase === 'Succeeded' || p?.status?.phase === 'Failed' ? p.status.phase : undefined;
      }, 500);
      if (phase === 'Failed') failed.push(`${n} (kubectl -n ${NS} logs ${name} --all-containers)`);
      else await kube.remove('v1', 'Pod', name, NS);
    }
    if (failed.length > 0) throw usageError(`the cleanup failed on ${failed.join(', ')}: fix what its log says and run uninstall again`, USAGE);
    say(`✓ routes, rules, chains, cable devices, gateway state and policy tables removed on ${nodes.join(', ')}`);
  }

  // 3. the broker's records of this cluster
  const broker = await clusterBrokerClient(kube, 'uninstall', 20_000);
  if (broker !== undefined) {
    try {
      const r = await broker.client.unregisterCluster(broker.clusterId);
      say(r.existed ? `✓ ${broker.clusterId} left the clusterset: its broker records are gone, the other clusters drop their cables` : `✓ ${broker.clusterId} had no records at the broker`);
    } finally {
      broker.client.close();
    }
  }

  // 4. CoreDNS's clusterset.local stanza (the MCS controller wrote it)
  const coredns = await kube.read('v1', 'ConfigMap', 'coredns', 'kube-system');
  const corefile = coredns?.data?.['Corefile'];
  if (coredns !== undefined && corefile !== undefined && withoutStanza(corefile) !== corefile) {
    await kube.core.patchNamespacedConfigMap({ name: 'coredns', namespace: 'kube-system', body: { data: { Corefile: withoutStanza(corefile) } } }, merge);
    // a CoreDNS without the reload plugin reads its Corefile at start only
    await kube.apps.patchNamespacedDeployment({
      name: 'coredns', namespace: 'kube-system', body: { spec: { template: { metadata: { annotations: { 'isthmus.dev/corefile-restored': new Date().toISOString() } } } } },
    }, merge).catch(() => undefined);
    say('✓ the clusterset.local stanza removed from kube-system/coredns');
  }

  // 5. gateway labels join added, cluster-wide RBAC, CRDs, the namespace
  for (const n of (await kube.core.listNode()).items) {
    if (n.metadata?.annotations?.[JOINED_LABEL_ANNOTATION] === undefined) continue;
    await kube.core.patchNode({ name: n.metadata.name ?? '', body: { metadata: { labels: { 'isthmus.dev/gateway-capable': null }, annotations: { [JOINED_LABEL_ANNOTATION]: null } } } }, merge);
  }
  for (const f of JOIN_RBAC) {
    for (const o of await manifest(f)) {
      if (o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding') await kube.remove(o.apiVersion ?? '', o.kind, o.metadata?.name ?? '');
    }
  }
  for (const crd of JOIN_CRDS) await kube.remove('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd);
  await waitFor('our CRDs gone', timeoutMs, async () => {
    for (const crd of JOIN_CRDS) if ((await kube.read('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd)) !== undefined) return undefined;
    return true;
  }, 500);
  if (hostsBroker && !cfg.broker) {
    for (const [kind, name] of [['Secret', 'isthmus-broker-client'], ['Secret', IPSEC_SECRET], ['ConfigMap', 'isthmus-gateway'], ['ConfigMap', 'isthmus-mcs']] as const) await kube.remove('v1', kind, name, NS);
    // the policy controller's mirrored state (policy/state.ts: labelled isthmus.dev/policy-state)
    for (const cm of await kube.list('v1', 'ConfigMap', NS, POLICY_STATE_LABEL)) await kube.remove('v1', 'ConfigMap', cm.metadata?.name ?? '', NS);
    for (const f of JOIN_RBAC) {
      for (const o of await manifest(f)) if (o.metadata?.namespace === NS) await kube.remove(o.apiVersion ?? '', o.kind ?? '', o.metadata.name ?? '', NS);
    }
    say(`✓ RBAC, CRDs and our objects removed; the broker stays in ${NS} (uninstall --broker removes it, which cuts every member off)`);
  } else {
    await kube.remove('v1', 'Namespace', NS);
    await waitFor(`namespace ${NS} gone`, timeoutMs, async () => ((await kube.read('v1', 'Namespace', NS)) === undefined ? true : undefined));
    say(`✓ RBAC, CRDs and namespace ${NS}${hostsBroker ? ' with the broker and etcd' : ''} removed`);
  }
  say(`\nnothing of Isthmus is left in ${kube.context}`);
  return 0;
}

export const uninstallCommand: Command = {
  name: 'uninstall',
  run,
};
