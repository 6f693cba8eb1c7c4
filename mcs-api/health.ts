/**
 * Which remote clusters' endpoints are not ready, from the local Gateway resources
 * (isthmus.dev Gateway, one per gateway node, written by the gateway engine every
 * second), pure.
 *
 * - The active Gateway's status.connections says, per remote cluster, whether its cable
 *   is "connected". A remote cluster with no connection there, or one not "connected",
 *   is unhealthy.
 * - With no active Gateway (none deployed, or mid-failover) nothing is known: every
 *   cluster counts as healthy, so a gateway restart never flaps the endpoints (the
 *   cables outlive it; DESIGN: nothing that works stops working).
 * - Several active (a stale one not yet stood down): a cluster is healthy when any of
 *   them has it connected.
 * - The local cluster is always healthy: its pods need no cable.
 */
export interface GatewayView {
  status?: { haStatus?: string; connections?: { cluster?: string; status?: string }[] };
}

export function unhealthyClusters(gateways: readonly GatewayView[], exporting: readonly string[], localCluster: string): Set<string> {
  const active = gateways.filter((g) => g.status?.haStatus === 'active');
  const out = new Set<string>();
  if (active.length === 0) return out;
  const connected = new Set<string>();
  for (const g of active) for (const c of g.status?.connections ?? []) if (c.status === 'connected' && c.cluster !== undefined) connected.add(c.cluster);
  for (const c of exporting) if (c !== localCluster && !connected.has(c)) out.add(c);
  return out;
}
