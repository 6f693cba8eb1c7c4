import type { CoordinationV1Api, CoreV1Api, V1Node, V1NodeCondition, V1NodeStatus } from '@kubernetes/client-node';
import { WAN_CIDR, type NodePlan } from '../plan.ts';
import { cidrContains, parseCidr } from '../../core/index.ts';

/**
 * Node registration and heartbeats, as a kubelet does them: the Node object with
 * labels, addresses and a Ready condition, and a Lease in kube-node-lease renewed
 * every 10 s so the node lifecycle controller keeps the node Ready.
 */
export const LEASE_SECONDS = 40;
/** The kubelet API's port on every node's address (the real kubelet's default). */
export const KUBELET_PORT = 10250;
export const GATEWAY_LABEL = 'isthmus.dev/gateway-capable';

export function nodeObject(n: NodePlan, cluster: string, now: Date): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'isthmus.dev/sandbox-cluster': cluster,
        ...(n.gateway ? { [GATEWAY_LABEL]: 'true' } : {}),
      },
    },
    spec: {},
    status: nodeStatus(n, now),
  };
}

function condition(type: string, status: string, reason: string, message: string, now: Date): V1NodeCondition {
  return { type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now };
}

export function nodeStatus(n: NodePlan, now: Date): V1NodeStatus {
  return {
    addresses: [
      { type: 'InternalIP', address: n.ip },
      // a gateway node directly on the wan is reachable there from the other clusters (not one behind NAT)
      ...(n.wan !== undefined && cidrContains(parseCidr(WAN_CIDR), n.wan.ip) ? [{ type: 'ExternalIP', address: n.wan.ip }] : []),
      { type: 'Hostname', address: n.name },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: KUBELET_PORT } },
    capacity: { cpu: '2', memory: '4Gi', pods: '110' },
    allocatable: { cpu: '2', memory: '4Gi', pods: '110' },
    conditions: [
      condition('Ready', 'True', 'KubeletReady', 'isthmus sandbox kubelet is posting ready status', now),
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'sandbox node', now),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'sandbox node', now),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'sandbox node', now),
    ],
    nodeInfo: {
      architecture: 'amd64',
      bootID: '',
      containerRuntimeVersion: 'isthmus-sandbox://1',
      kernelVersion: '',
      kubeProxyVersion: '',
      kubeletVersion: 'v1.36.3',
      machineID: '',
      operatingSystem: 'linux',
      osImage: 'isthmus sandbox',
      systemUUID: '',
    },
  };
}

const isConflict = (err: unknown): boolean => (err as { code?: number }).code === 409;

/**
 * Creates the Node if absent, then (re)writes its status with a fresh heartbeat.
 * The controller-manager updates new nodes (pod CIDR, taints) at the same time, so
 * a conflict is retried from a fresh read.
 */
export async function registerNode(api: CoreV1Api, n: NodePlan, cluster: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const now = new Date();
    try {
      let node: V1Node;
      try {
        node = await api.readNode({ name: n.name });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
        node = await api.createNode({ body: nodeObject(n, cluster, now) });
      }
      await heartbeat(api, node, n, now);
      return;
    } catch (err) {
      if (!isConflict(err) || attempt >= 10) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/** Refreshes the conditions' heartbeat, keeping the podCIDR and everything else others set. */
export async function heartbeat(api: CoreV1Api, node: V1Node, n: NodePlan, now: Date): Promise<void> {
  const fresh = nodeStatus(n, now);
  const prior = new Map((node.status?.conditions ?? []).map((c) => [c.type, c]));
  const conditions = (fresh.conditions ?? []).map((c) => {
    const old = prior.get(c.type);
    return old !== undefined && old.status === c.status ? { ...c, lastTransitionTime: old.lastTransitionTime ?? now } : c;
  });
  await api.replaceNodeStatus({ name: n.name, body: { ...node, status: { ...node.status, ...fresh, conditions } } });
}

/** RFC 3339 with microseconds, as Kubernetes MicroTime fields want. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export async function renewLease(api: CoordinationV1Api, node: string, now: Date): Promise<void> {
  const body = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: node, namespace: 'kube-node-lease' },
    // MicroTime: the apiserver wants six fractional digits; client-node passes strings through as they are
    spec: { holderIdentity: node, leaseDurationSeconds: LEASE_SECONDS, renewTime: microTime(now) as unknown as Date },
  };
  try {
    const lease = await api.readNamespacedLease({ name: node, namespace: 'kube-node-lease' });
    await api.replaceNamespacedLease({ name: node, namespace: 'kube-node-lease', body: { ...lease, spec: { ...lease.spec, ...body.spec } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    await api.createNamespacedLease({ namespace: 'kube-node-lease', body });
  }
}
