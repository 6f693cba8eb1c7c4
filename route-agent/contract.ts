import type { GatewayNode, RemoteView, VxlanPeer } from './desired.ts';

/**
 * The contract between the gateway and the route agents of one cluster, all through the
 * local apiserver (route agents hold no broker credential):
 *
 * - The active gateway node is the holder of the Lease `isthmus-gateway` in
 *   `isthmus-system` (the gateway's identity is its node name). A takeover changes the
 *   holder at once, so routes follow a failover without waiting for any status.
 * - The remote clusters come from the `Gateway` resources (isthmus.dev/v1alpha1, one per
 *   gateway node): `status.connections[]` with `cluster`, `subnets` (the remote CIDRs the
 *   gateway routes into that cable) and `mtu` (the path MTU through it). The holder's
 *   Gateway is used when its `haStatus` is `active`; right after a takeover, before the new
 *   gateway wrote its status, the last other Gateway that says `active` is (remote CIDRs
 *   do not change with a failover).
 * - Each route agent writes its own `RouteAgent` (isthmus.dev/v1alpha1, named after its
 *   node): the active gateway node's agent reads the others' `status.mode` and
 *   `status.nodeIP`/`podCIDR` to send return traffic to vxlan-mode nodes through the tunnel.
 *
 * Everything read here is validated again where it is used (desired.ts).
 */
export interface LeaseLike { metadata?: { name?: string }; spec?: { holderIdentity?: string } }
export interface GatewayLike {
  metadata?: { name?: string };
  status?: { haStatus?: string; connections?: { cluster?: unknown; subnets?: unknown; mtu?: unknown }[] };
}
export interface NodeLike {
  metadata?: { name?: string };
  spec?: { podCIDR?: string };
  status?: { addresses?: { type?: string; address?: string }[] };
}
export interface RouteAgentLike {
  metadata?: { name?: string };
  status?: { mode?: string; nodeIP?: string; podCIDR?: string };
}

export function nodeIp(n: NodeLike | undefined): string | undefined {
  return n?.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
}

function remotesOf(g: GatewayLike): RemoteView[] {
  const out: RemoteView[] = [];
  for (const c of g.status?.connections ?? []) {
    if (typeof c.cluster !== 'string' || !Array.isArray(c.subnets)) continue;
    const cidrs = c.subnets.filter((s): s is string => typeof s === 'string');
    const mtu = typeof c.mtu === 'number' && Number.isInteger(c.mtu) && c.mtu >= 576 && c.mtu <= 9000 ? c.mtu : undefined;
    out.push({ cluster: c.cluster, cidrs, ...(mtu === undefined ? {} : { mtu }) });
  }
  return out;
}

export interface ClusterInputs {
  readonly gateway: GatewayNode | undefined;
  readonly remotes: readonly RemoteView[];
  readonly vxlanPeers: readonly VxlanPeer[];
  /** Why there is no gateway, for the status. */
  readonly note?: string;
}

/** Pure: who the gateway is and what it routes, from the local apiserver's objects. */
export function clusterInputs(lease: LeaseLike | undefined, gateways: readonly GatewayLike[], nodes: readonly NodeLike[], agents: readonly RouteAgentLike[]): ClusterInputs {
  const holder = lease?.spec?.holderIdentity ?? '';
  const active = gateways.filter((g) => g.status?.haStatus === 'active').sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
  const source = active.find((g) => g.metadata?.name === holder) ?? active[0];
  const remotes = source === undefined ? [] : remotesOf(source);
  const vxlanPeers: VxlanPeer[] = agents.flatMap((a) => (a.status?.mode === 'vxlan' && typeof a.status.nodeIP === 'string' && typeof a.status.podCIDR === 'string' && a.status.podCIDR !== ''
    ? [{ ip: a.status.nodeIP, podCidr: a.status.podCIDR }] : []));
  if (holder === '') return { gateway: undefined, remotes, vxlanPeers, note: 'no gateway holds the Lease' };
  const ip = nodeIp(nodes.find((n) => n.metadata?.name === holder));
  if (ip === undefined) return { gateway: undefined, remotes, vxlanPeers, note: `the gateway node ${holder} has no InternalIP` };
  return { gateway: { name: holder, ip }, remotes, vxlanPeers };
}
