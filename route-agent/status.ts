import type { Desired, Mode } from './desired.ts';

/**
 * A node's `RouteAgent` resource (isthmus.dev/v1alpha1, in the gateway's namespace,
 * named after the node): what it routes, via which node and mode, what it refused and
 * why, and the errors of its last reconcile. `kubectl -n isthmus-system get routeagents`
 * shows one line per node. Written only when it changed.
 */
export interface RouteAgentStatus {
  nodeIP: string;
  podCIDR: string;
  /** The active gateway node ('' when none is known). */
  gateway: string;
  /** This node's role and how it reaches the gateway. */
  mode: Mode | 'gateway';
  modeReason: string;
  filter: string;
  routes: number;
  summary: string;
  remotes: { cluster: string; cidrs: string[]; via: string; mode: string; mtu?: number }[];
  refused: { cluster: string; reason: string }[];
  errors: string[];
}

export function routeAgentStatus(o: {
  nodeIp: string; podCidr: string; gateway: string; isGateway: boolean; mode: Mode; modeReason: string; filter: string; desired: Desired; errors: readonly string[];
}): RouteAgentStatus {
  const remotes = o.desired.routed.map((r) => ({ cluster: r.cluster, cidrs: [...r.cidrs], via: r.via, mode: r.mode, ...(r.mtu === undefined ? {} : { mtu: r.mtu }) }));
  return {
    nodeIP: o.nodeIp,
    podCIDR: o.podCidr,
    gateway: o.gateway,
    mode: o.isGateway ? 'gateway' : o.mode,
    modeReason: o.isGateway ? 'this node is the active gateway: remote CIDRs go into the cables' : o.modeReason,
    filter: o.filter,
    routes: o.desired.routes.length,
    summary: `${remotes.length} routed, ${o.desired.refused.length} refused${o.errors.length > 0 ? `, ${o.errors.length} errors` : ''}`,
    remotes,
    refused: o.desired.refused.map((r) => ({ ...r })),
    errors: [...o.errors],
  };
}
