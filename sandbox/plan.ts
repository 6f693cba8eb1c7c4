import { ErrorCodes, IsthmusError } from '../core/index.ts';

/**
 * The sandbox's desired layout, computed by a pure function from its options:
 * cluster names, CIDRs and loopback ports. Nothing here touches the machine.
 *
 * Defaults: cluster i (1-based) gets pod CIDR 10.<i>.0.0/16 and service CIDR
 * 10.<100+i>.0.0/16; with `overlapping`, every cluster gets 10.1.0.0/16 and
 * 10.101.0.0/16. Each cluster's nodes share an L2 segment, a bridge `isb-c<i>`
 * with node CIDR 172.30.<i>.0/24 whose first address is the host's: the
 * apiserver listens and advertises there, as a control-plane node would. Ports: cluster i uses portBase + 10*(i-1) + {0 apiserver,
 * 1 etcd client, 2 etcd peer, 3 controller-manager}.
 */
export interface SandboxOptions {
  /** Number of clusters, 1..16 (default 2). */
  readonly clusters: number;
  /** Give every cluster the same pod and service CIDRs (default false). */
  readonly overlapping: boolean;
  /** First loopback port (default 16400). */
  readonly portBase: number;
  /** Nodes per cluster, 1..16 (default 2). */
  readonly nodes: number;
  /** Gateway-capable nodes per cluster (the first ones), 1..4 and at most `nodes` (default 1). */
  readonly gateways: number;
  /** Clusters whose gateway node reaches the wan through a NAT router (default none). */
  readonly nat: readonly string[];
  /** Size of each node's pod CIDR (default 24). */
  readonly nodeCidrMask: number;
  /** kube-proxy's mode on every node (default iptables). */
  readonly proxyMode?: ProxyMode;
  /** kube-proxy's minimum time between two rule syncs in ms (absent: its own default, 1 s). */
  readonly proxyMinSyncMs?: number;
}

export const PROXY_MODES = ['iptables', 'nftables', 'ipvs'] as const;
export type ProxyMode = (typeof PROXY_MODES)[number];

export interface NodePlan {
  /** `<cluster>-n<j>`, the Node object's name. */
  readonly name: string;
  readonly netns: string;
  /** Host end of the node's veth on the cluster bridge. */
  readonly hostVeth: string;
  readonly ip: string;
  /** The first `gateways` nodes of every cluster can run the gateway: they are also on the wan. */
  readonly gateway: boolean;
  /** A gateway node's link to the wan (absent for other nodes). */
  readonly wan?: NodeWan;
}

/**
 * A gateway node's `wan0`: on the wan bridge through a host veth, or, behind NAT, on
 * the router namespace's inside bridge through a veth whose other end is in the router.
 */
export interface NodeWan {
  /** The node's own address on wan0, without prefix (a private one behind NAT). */
  readonly ip: string;
  /** The other end of wan0: on the host (direct) or in the NAT router namespace. */
  readonly peerVeth: string;
}

/**
 * How a cluster's gateway nodes sit on the wan segment that joins the clusters. Direct:
 * gateway node k of cluster i has 172.29.0.(10 + i + 20(k-1)). Behind NAT: one router
 * namespace per cluster holds the wan address 172.29.0.(10 + i), masquerades, and has an
 * inside bridge 172.28.i.1/24 where gateway node k has 172.28.i.(9 + k).
 */
export interface WanPlan {
  /** The address other gateways reach the first gateway node at (the NAT router's, when behind NAT). */
  readonly ip: string;
  /** Host end of the veth on the wan bridge: the first gateway node's or the router's. */
  readonly hostVeth: string;
  /** `nodeInside` is the first gateway node's inside address (with prefix). */
  readonly nat?: { readonly netns: string; readonly routerInside: string; readonly nodeInside: string };
}

export const WAN_CIDR = '172.29.0.0/24';
export const WAN_BRIDGE = 'isb-wan';
/** The host's address on the wan: where a broker for the clusterset listens in the sandbox. */
export const WAN_HOST_IP = '172.29.0.1';

export interface ClusterPorts {
  readonly apiserver: number;
  readonly etcdClient: number;
  readonly etcdPeer: number;
  readonly controllerManager: number;
}

export interface ClusterPlan {
  /** c1, c2, … : an RFC-1123 label, also the kubeconfig context name. */
  readonly name: string;
  readonly index: number;
  readonly podCidr: string;
  readonly serviceCidr: string;
  /** First address of the service CIDR: the `kubernetes` Service's ClusterIP. */
  readonly apiServiceIp: string;
  /** The cluster's node segment (never overlapping between clusters). */
  readonly nodeCidr: string;
  /** The host's address on the node segment; the apiserver's address. */
  readonly hostIp: string;
  /** The node segment's bridge on the host. */
  readonly bridge: string;
  readonly ports: ClusterPorts;
  readonly nodes: readonly NodePlan[];
  readonly wan: WanPlan;
  readonly nodeCidrMask: number;
  readonly proxyMode: ProxyMode;
  readonly proxyMinSyncMs?: number;
}

export const MAX_CLUSTERS = 16;
export const DEFAULT_PORT_BASE = 16400;
export const MAX_GATEWAYS = 4;

export function planSandbox(options: SandboxOptions): readonly ClusterPlan[] {
  if (!Number.isInteger(options.clusters) || options.clusters < 1 || options.clusters > MAX_CLUSTERS) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--clusters must be between 1 and ${MAX_CLUSTERS}, got ${options.clusters}`);
  }
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 16) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--nodes must be between 1 and 16, got ${options.nodes}`);
  }
  if (!Number.isInteger(options.gateways) || options.gateways < 1 || options.gateways > MAX_GATEWAYS || options.gateways > options.nodes) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--gateways must be between 1 and ${Math.min(MAX_GATEWAYS, options.nodes)} (at most --nodes), got ${options.gateways}`);
  }
  if (!Number.isInteger(options.nodeCidrMask) || options.nodeCidrMask < 17 || options.nodeCidrMask > 29) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--node-cidr-mask must be between 17 and 29, got ${options.nodeCidrMask}`);
  }
  for (const name of options.nat) {
    const m = /^c(\d+)$/.exec(name);
    if (m === null || Number(m[1]) < 1 || Number(m[1]) > options.clusters) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--nat ${name}: no such cluster; the clusters are c1..c${options.clusters}`);
    }
  }
  if (options.proxyMode !== undefined && !PROXY_MODES.includes(options.proxyMode)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--proxy-mode must be one of ${PROXY_MODES.join(', ')}, got ${String(options.proxyMode)}`);
  }
  if (options.proxyMinSyncMs !== undefined && (!Number.isInteger(options.proxyMinSyncMs) || options.proxyMinSyncMs < 0 || options.proxyMinSyncMs > 60_000)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--proxy-min-sync must be whole milliseconds from 0 to 60000, got ${String(options.proxyMinSyncMs)}`);
  }
  const lastPort = options.portBase + 10 * options.clusters;
  if (!Number.isInteger(options.portBase) || options.portBase < 1024 || lastPort > 65535) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `--port-base must leave room for ${options.clusters} clusters between 1024 and 65535, got ${options.portBase}`);
  }
  const plans: ClusterPlan[] = [];
  for (let i = 1; i <= options.clusters; i++) {
    const n = options.overlapping ? 1 : i;
    const base = options.portBase + 10 * (i - 1);
    const natted = options.nat.includes(`c${i}`);
    const nodeWan = (k: number): NodeWan => natted
      ? { ip: `172.28.${i}.${9 + k}`, peerVeth: `in${k}` }
      : { ip: `172.29.0.${10 + i + 20 * (k - 1)}`, peerVeth: k === 1 ? `isbw-c${i}` : `isbw-c${i}-${k}` };
    plans.push({
      name: `c${i}`,
      index: i,
      podCidr: `10.${n}.0.0/16`,
      serviceCidr: `10.${100 + n}.0.0/16`,
      apiServiceIp: `10.${100 + n}.0.1`,
      nodeCidr: `172.30.${i}.0/24`,
      hostIp: `172.30.${i}.1`,
      bridge: `isb-c${i}`,
      nodeCidrMask: options.nodeCidrMask,
      proxyMode: options.proxyMode ?? 'iptables',
      ...(options.proxyMinSyncMs === undefined ? {} : { proxyMinSyncMs: options.proxyMinSyncMs }),
      nodes: Array.from({ length: options.nodes }, (_, k) => ({
        name: `c${i}-n${k + 1}`,
        netns: `isb-c${i}-n${k + 1}`,
        hostVeth: `isbv-c${i}-n${k + 1}`,
        ip: `172.30.${i}.${11 + k}`,
        gateway: k < options.gateways,
        ...(k < options.gateways ? { wan: nodeWan(k + 1) } : {}),
      })),
      wan: {
        ip: `172.29.0.${10 + i}`,
        hostVeth: `isbw-c${i}`,
        ...(natted ? { nat: { netns: `isb-c${i}-nat`, routerInside: `172.28.${i}.1/24`, nodeInside: `172.28.${i}.10/24` } } : {}),
      },
      ports: { apiserver: base, etcdClient: base + 1, etcdPeer: base + 2, controllerManager: base + 3 },
    });
  }
  return plans;
}
