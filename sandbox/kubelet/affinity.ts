import type { V1Pod } from '@kubernetes/client-node';

/**
 * The nodes a pod's required pod anti-affinity keeps it off, as kube-scheduler decides it for
 * the one topology the sandbox has (`kubernetes.io/hostname`, a node each): a node where a pod
 * of the pod's namespace (or the term's namespaces) matching the term's `matchLabels` runs or
 * still terminates. matchExpressions and other topology keys are not read (no manifest of ours
 * uses them). Pure. The gateway Deployment relies on it: never two gateways on one node.
 */
export function antiAffinityBlocked(pod: V1Pod, placed: readonly { readonly pod: V1Pod; readonly node: string }[]): Set<string> {
  const out = new Set<string>();
  const terms = pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  for (const t of terms) {
    if (t.topologyKey !== 'kubernetes.io/hostname') continue;
    const match = t.labelSelector?.matchLabels ?? {};
    const namespaces = t.namespaces !== undefined && t.namespaces.length > 0 ? t.namespaces : [pod.metadata?.namespace ?? 'default'];
    for (const p of placed) {
      if (p.pod.metadata?.uid === pod.metadata?.uid || !namespaces.includes(p.pod.metadata?.namespace ?? 'default')) continue;
      const labels = p.pod.metadata?.labels ?? {};
      if (Object.entries(match).every(([k, v]) => labels[k] === v)) out.add(p.node);
    }
  }
  return out;
}
