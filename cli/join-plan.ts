import { ErrorCodes, IsthmusError, certificateInfo, formatCidr, parseCidr } from '../core/index.ts';
import { verifyWithBundle } from '../certs/index.ts';
import type { Obj } from './kube-apply.ts';

/**
 * Pure pieces of `isthmus join`: the cluster's CIDRs from what the apiserver shows, and
 * the deploy/ objects filled in for one cluster. Same input, same objects, so a re-run
 * applies nothing new.
 */
export interface JoinSettings {
  readonly clusterId: string;
  /**
   * Where the gateways (host network) and tools dial the broker: every address of
   * broker-info (each node of its NodePort; only those running a broker replica answer,
   * and the clients use whichever does). The ConfigMaps hold them as one comma list.
   */
  readonly brokers: readonly string[];
  /** Where the parts on the pod network (MCS and policy controllers) dial it (podBrokerAddress), when that differs. */
  readonly podBroker?: string;
  readonly cableDriver: 'wireguard' | 'ipsec' | 'vxlan';
  readonly podCidrs: readonly string[];
  readonly serviceCidrs: readonly string[];
  readonly publicIp: string;
  readonly natTraversal: boolean;
  readonly privateSockets: boolean;
  readonly gatewayReplicas: number;
  readonly image: string;
}

/**
 * The pod CIDR that covers every node's podCIDR: their common prefix, widened to a /16
 * (IPv4) or /48 (IPv6) at most — a cluster CIDR is rarely narrower, and nodes added later
 * get blocks from the same range. Use --pod-cidrs where this guess is wrong.
 */
export function coveringCidr(nodeCidrs: readonly string[]): string[] {
  const byFamily = new Map<4 | 6, ReturnType<typeof parseCidr>[]>();
  for (const raw of nodeCidrs) {
    const c = parseCidr(raw);
    byFamily.set(c.family, [...(byFamily.get(c.family) ?? []), c]);
  }
  const out: string[] = [];
  for (const [family, cidrs] of [...byFamily].sort((a, b) => a[0] - b[0])) {
    const bits = family === 4 ? 32 : 128;
    const first = cidrs[0];
    if (first === undefined) continue;
    let prefix = Math.min(...cidrs.map((c) => c.prefix), family === 4 ? 16 : 48);
    const mask = (p: number): bigint => (p === 0 ? 0n : ((1n << BigInt(p)) - 1n) << BigInt(bits - p));
    while (prefix > 0 && !cidrs.every((c) => (c.base & mask(prefix)) === (first.base & mask(prefix)))) prefix--;
    out.push(formatCidr({ family, base: first.base & mask(prefix), prefix }));
  }
  return out;
}

/** The broker as its own cluster sees it: the TLS Secret's CA and certificate, the Service's cluster IPs and gRPC port. */
export interface LocalBroker {
  readonly caPem: string;
  readonly certPem: string;
  readonly clusterIps: readonly string[];
  readonly port: number;
}

/**
 * Where this cluster's parts on the pod network (the MCS and policy controllers) dial the
 * broker. In the cluster that hosts it (its TLS Secret holds broker-info's CA), the
 * Service's cluster IP: a pod that dials a NodePort (externalTrafficPolicy Local) of
 * another node is answered by the broker pod's node directly, not through the node it
 * dialled, so when that is a third node the connection never opens (kube-proxy does not
 * masquerade pod traffic there). Elsewhere, or when the broker's certificate does not name
 * the cluster IP yet (a broker deployed before it did), broker-info's addresses (a comma
 * list, as BROKER holds them) and, then, a note of what to do. The gateways keep broker-info's address everywhere: the
 * source address the broker sees them at is what NAT discovery publishes. Pure.
 */
export function podBrokerAddress(info: { readonly brokers: readonly string[]; readonly caPem: string }, local: LocalBroker | undefined): { address: string; note?: string } {
  const external = info.brokers.join(',');
  if (local === undefined || local.caPem.trim() !== info.caPem.trim() || local.certPem === '' || !(local.port > 0)) return { address: external };
  const names = new Set(certificateInfo(local.certPem).ipAddresses);
  const ip = local.clusterIps.find((x) => names.has(x));
  if (ip === undefined) {
    return { address: external, note: `the broker runs in this cluster but its certificate does not name its Service's cluster IP, so pods here dial ${external}, which fails now and then; run \`isthmus broker deploy\` again (it keeps the CA and tokens and reissues the certificate), then join again` };
  }
  return { address: ip.includes(':') ? `[${ip}]:${local.port}` : `${ip}:${local.port}` };
}

/** The mode in kube-proxy's config (the kube-system/kube-proxy ConfigMap's config.conf): '' means iptables. */
export function proxyModeOf(configConf: string | undefined): string {
  if (configConf === undefined) return 'unknown';
  const m = /^mode:\s*"?([A-Za-z]*)"?\s*$/m.exec(configConf);
  return m === null || m[1] === '' ? 'iptables' : (m[1] as string);
}

/** podSubnet / serviceSubnet of kubeadm's ClusterConfiguration (kube-system/kubeadm-config), comma lists allowed. */
export function kubeadmSubnets(clusterConfiguration: string | undefined): { pod: string[]; service: string[] } {
  const get = (k: string): string[] => {
    const m = new RegExp(`^\\s*${k}:\\s*"?([^"\\n]+?)"?\\s*$`, 'm').exec(clusterConfiguration ?? '');
    return m === null ? [] : (m[1] as string).split(',').map((s) => s.trim()).filter((s) => s !== '');
  };
  return { pod: get('podSubnet'), service: get('serviceSubnet') };
}

/** The RBAC manifests of deploy/ that join applies, in order; uninstall removes the same. */
export const JOIN_RBAC: readonly string[] = ['gateway/rbac.yaml', 'route-agent/rbac.yaml', 'mcs-api/rbac.yaml', 'policy/rbac.yaml', 'policy/cluster-properties-rbac.yaml'];

/** The policy workloads of deploy/policy/ (the controller Deployment, the agent DaemonSet); they read the ConfigMap isthmus-gateway. */
export const POLICY_WORKLOADS: readonly string[] = ['policy/controller.yaml', 'policy/agent.yaml'];

/**
 * The workloads join runs, as uninstall stops them (every one labelled
 * app.kubernetes.io/name = its name): apiVersion, kind, name.
 */
export const JOIN_WORKLOADS: readonly (readonly [string, string, string])[] = [
  ['apps/v1', 'Deployment', 'isthmus-gateway'], ['apps/v1', 'DaemonSet', 'isthmus-route-agent'], ['apps/v1', 'Deployment', 'isthmus-mcs'],
  ['apps/v1', 'Deployment', 'isthmus-dns'], ['v1', 'Service', 'isthmus-dns'], ['apps/v1', 'Deployment', 'isthmus-policy-controller'], ['apps/v1', 'DaemonSet', 'isthmus-policy-agent'],
];

/** BROKER of the ConfigMaps: the broker's addresses as one comma list (a single address reads as before). */
export function brokerList(s: Pick<JoinSettings, 'brokers'>): string {
  return s.brokers.join(',');
}

/** The ConfigMap the gateway and the route agents read (deploy/gateway/deployment.yaml). */
export function gatewayConfigMap(base: Obj, s: JoinSettings): Obj {
  const o = structuredClone(base);
  o.data = {
    ...o.data, CLUSTER_ID: s.clusterId, BROKER: brokerList(s), POD_BROKER: s.podBroker ?? brokerList(s), CABLE_DRIVER: s.cableDriver, POD_CIDRS: s.podCidrs.join(','), SERVICE_CIDRS: s.serviceCidrs.join(','),
    PRIVATE_IP: 'auto', PUBLIC_IP: s.publicIp, FORCE_NAT: String(s.natTraversal), PRIVATE_SOCKETS: String(s.privateSockets),
  };
  return o;
}

/** The ConfigMap the MCS controller reads (deploy/mcs-api/deployment.yaml): it runs on the pod network, so POD_BROKER's address. */
export function mcsConfigMap(base: Obj, s: JoinSettings): Obj {
  const o = structuredClone(base);
  o.data = { ...o.data, BROKER: s.podBroker ?? brokerList(s) };
  return o;
}

/** The Secret holding every gateway node's IPsec certificate: `<node>.crt`, `<node>.key`, `ca.crt`. */
export const IPSEC_SECRET = 'isthmus-gateway-ipsec';
const IPSEC_DIR = '/etc/isthmus/ipsec';

interface PodSpecLike {
  containers: { name: string; image: string; args?: string[]; volumeMounts?: object[] }[];
  volumes?: object[];
}

/** On the pod template of each workload that dials the broker: the addresses it dials. */
export const BROKER_ANNOTATION = 'isthmus.dev/broker';

/**
 * The workloads that dial the broker, and which addresses (BROKER: every one of
 * broker-info, or POD_BROKER's). They read them from a ConfigMap at start only, so their
 * pod template names them too: a join that changes the addresses (an older single one
 * becoming the list) rolls them out, and one that does not leaves them be.
 */
const BROKER_CLIENTS: Readonly<Record<string, 'brokers' | 'podBroker'>> = { 'isthmus-gateway': 'brokers', 'isthmus-mcs': 'podBroker', 'isthmus-policy-controller': 'podBroker' };

/**
 * A workload of deploy/ with our image (and, for the gateway, one replica per gateway node;
 * with the ipsec driver, IPSEC_SECRET mounted and each pod reading its own node's files;
 * for those that dial the broker, BROKER_ANNOTATION).
 */
export function workload(base: Obj, s: JoinSettings): Obj {
  const o = structuredClone(base) as Obj & { spec: { replicas?: number; template: { metadata?: { annotations?: Record<string, string> }; spec: PodSpecLike } } };
  for (const c of o.spec.template.spec.containers) c.image = s.image;
  const dials = o.kind === 'Deployment' ? BROKER_CLIENTS[o.metadata?.name ?? ''] : undefined;
  if (dials !== undefined) {
    const t = o.spec.template;
    t.metadata = { ...t.metadata, annotations: { ...t.metadata?.annotations, [BROKER_ANNOTATION]: dials === 'brokers' ? brokerList(s) : s.podBroker ?? brokerList(s) } };
  }
  if (o.kind === 'Deployment' && o.metadata?.name === 'isthmus-gateway') {
    o.spec.replicas = s.gatewayReplicas;
    const gw = o.spec.template.spec.containers.find((c) => c.name === 'gateway');
    if (s.cableDriver === 'ipsec' && gw !== undefined) {
      gw.args = [...(gw.args ?? []), `--tls-dir=${IPSEC_DIR}`, '--tls-name=$(NODE_NAME)'];
      gw.volumeMounts = [...(gw.volumeMounts ?? []), { name: 'ipsec-certs', mountPath: IPSEC_DIR, readOnly: true }];
      o.spec.template.spec.volumes = [...(o.spec.template.spec.volumes ?? []), { name: 'ipsec-certs', secret: { secretName: IPSEC_SECRET, defaultMode: 0o400 } }];
    }
  }
  return o;
}

/**
 * The gateway nodes whose IPsec certificate in IPSEC_SECRET's files must be (re)issued: none
 * stored, no key, not `<node>.<cluster>`, not from this clusterset's CA bundle, or less than
 * a week left. Pure (given `now`).
 */
export function gatewayCertsToIssue(files: Readonly<Record<string, string>>, nodes: readonly string[], clusterId: string, caPem: string, now = new Date()): string[] {
  return nodes.filter((node) => {
    const cert = files[`${node}.crt`] ?? '';
    if (cert === '' || (files[`${node}.key`] ?? '') === '') return true;
    try {
      const info = certificateInfo(cert);
      verifyWithBundle(cert, caPem, now);
      return info.commonName !== `${node}.${clusterId}` || info.notAfter.getTime() - now.getTime() < 7 * 86_400_000;
    } catch {
      return true;
    }
  });
}

/** Cluster ids are RFC-1123 labels. */
export function checkClusterId(id: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(id)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `cluster id ${JSON.stringify(id)} is not an RFC-1123 label: use 1-63 lower-case letters, digits and '-'`);
  }
  return id;
}
