import type { CableSpec } from './cable/driver.ts';

/**
 * The cables this gateway should have: a pure function of what the broker says.
 * One cable per remote cluster that has a published gateway endpoint using the same
 * cable driver; the newest endpoint (highest revision) wins, so after a failover the
 * cable follows the new active gateway before the old endpoint's lease expires.
 *
 * Address choice: a remote whose broker-observed source address differs from its
 * private address sits behind NAT — it is reached at its public address, with NAT
 * traversal on; the same when this gateway is behind NAT or NAT traversal is forced.
 * Otherwise the private address is used. That is a guess, so the first packet need
 * not wait: a NAT probe verdict (see nat-probe.ts) for the cluster overrides it,
 * 'private' when the remote's private address answered, 'public' when only its public
 * one did. A remote whose probe saw this gateway behind NAT gets NAT traversal on its
 * own cable (`seenBehindNatBy`); only several remotes agreeing make `local.behindNat`.
 */
export interface RemoteEndpoint {
  readonly clusterId: string;
  readonly hostname: string;
  readonly privateIp: string;
  /** Configured public address, or '' */
  readonly publicIp: string;
  /** The source address the broker saw when the endpoint was published, or '' */
  readonly observedIp: string;
  readonly port: number;
  /** Its published nat-probe port; absent or 0 when it has none (it is not probed). */
  readonly natProbePort?: number;
  readonly driver: string;
  readonly backend: Readonly<Record<string, string>>;
  /** Broker revision of the endpoint's last change. */
  readonly revision: number;
}

export interface RemoteCluster {
  readonly clusterId: string;
  /** The CIDRs to route to it: its global CIDR when it has one, else pods and services. */
  readonly cidrs: readonly string[];
}

export interface LocalView {
  readonly clusterId: string;
  readonly driver: string;
  /** This gateway is behind NAT (its observed address differs from its private one). */
  readonly behindNat: boolean;
  readonly forceNatTraversal: boolean;
}

export type ProbeVerdict = 'private' | 'public';

export function publicAddressOf(e: RemoteEndpoint): string {
  return e.publicIp !== '' ? e.publicIp : e.observedIp !== '' ? e.observedIp : e.privateIp;
}

export function remoteBehindNat(e: RemoteEndpoint): boolean {
  const pub = publicAddressOf(e);
  return pub !== e.privateIp;
}

/** The address choice without a probe verdict. */
export function guessVerdict(e: RemoteEndpoint): ProbeVerdict {
  return remoteBehindNat(e) ? 'public' : 'private';
}

/** The endpoint a cable goes to for each remote cluster on our driver (highest revision), sorted by cluster. */
export function newestEndpoints<E extends RemoteEndpoint>(local: Pick<LocalView, 'clusterId' | 'driver'>, endpoints: readonly E[]): E[] {
  const newest = new Map<string, E>();
  for (const e of endpoints) {
    if (e.clusterId === local.clusterId || e.driver !== local.driver) continue;
    const have = newest.get(e.clusterId);
    if (have === undefined || e.revision > have.revision) newest.set(e.clusterId, e);
  }
  return [...newest.values()].sort((a, b) => a.clusterId.localeCompare(b.clusterId));
}

export function desiredCables(
  local: LocalView,
  endpoints: readonly RemoteEndpoint[],
  clusters: ReadonlyMap<string, RemoteCluster>,
  probes: ReadonlyMap<string, ProbeVerdict> = new Map(),
  seenBehindNatBy: ReadonlySet<string> = new Set(),
): CableSpec[] {
  const out: CableSpec[] = [];
  for (const e of newestEndpoints(local, endpoints)) {
    const cluster = clusters.get(e.clusterId);
    if (cluster === undefined || cluster.cidrs.length === 0) continue; // endpoint before its cluster record: wait
    // a remote whose NAT probe saw us at another address: NAT traversal towards it only
    const nat = remoteBehindNat(e) || local.behindNat || seenBehindNatBy.has(e.clusterId);
    const verdict = probes.get(e.clusterId) ?? guessVerdict(e);
    out.push({
      remoteCluster: e.clusterId,
      remoteIp: verdict === 'public' ? publicAddressOf(e) : e.privateIp,
      remotePort: e.port,
      remoteCidrs: [...cluster.cidrs],
      natTraversal: nat || local.forceNatTraversal,
      backend: { ...e.backend },
    });
  }
  return out;
}
