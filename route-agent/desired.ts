import { cidrContains, cidrsOverlap, parseCidr, parseIp, type Cidr } from '../core/index.ts';

/**
 * What a node's routes and packet-filter rules should be: a pure function of what the
 * route agent sees (its own node, the cluster's active gateway node, the remote clusters
 * the active gateway publishes). Nothing here touches the machine.
 *
 * Tables and rules (all owned by the route agent, nothing else of the node's is touched):
 * - table `table` (default 230; strongSwan's is 220 and the ipsec driver's 219) holds one route per remote CIDR; rule `pref` looks it up
 *   for every packet (the table holds only remote CIDRs, so other traffic falls through).
 * - On a node that is not the active gateway: each remote CIDR goes to the active
 *   gateway node, `direct` (via its address, on-link) or `vxlan` (via its tunnel address
 *   on the intra-cluster VXLAN device), with the cable's MTU so a too-large packet gets
 *   "fragmentation needed" here. With no active gateway known: `unreachable`.
 * - On the active gateway node the cable driver routes each remote CIDR into its cable
 *   (in main, or in its own table before ours). Our table holds `unreachable` for every
 *   remote CIDR, looked up after main *without its default route* (a rule per remote
 *   CIDR with `suppress_prefixlength 0`): while a cable is down or refused its CIDRs are
 *   unreachable, never sent out by the default route in clear text (fail closed). Return
 *   traffic to nodes in vxlan mode goes back through their tunnel (table `table + 1`,
 *   looked up for packets from remote CIDRs only).
 *
 * A remote cluster is refused (not routed, the reason in the status) when a CIDR is not
 * a valid unicast IPv4 CIDR, overlaps this cluster's CIDRs, contains one of this node's
 * addresses or the gateway's, or overlaps another remote cluster's CIDR (then both are
 * refused: the route agent never chooses between two clusters claiming the same
 * addresses; their CIDRs are made unreachable). Invariant: the same view gives the same
 * desired state, in a stable order.
 */
export type Mode = 'direct' | 'vxlan';

export interface RemoteView {
  readonly cluster: string;
  /** The remote cluster's CIDRs as the gateway published them: untrusted, validated here. */
  readonly cidrs: readonly string[];
  /** Path MTU through the cable for inner packets (absent: not known yet). */
  readonly mtu?: number;
}

export interface GatewayNode {
  readonly name: string;
  readonly ip: string;
}

export interface VxlanPeer {
  /** The node's address on the cluster network (the VXLAN underlay). */
  readonly ip: string;
  /** The node's pod CIDR: return traffic from the cables to it goes through the tunnel. */
  readonly podCidr: string;
}

export interface AgentView {
  readonly node: { readonly name: string; readonly ip: string; readonly addresses: readonly string[] };
  /** This cluster's own CIDRs (pods, services): a remote CIDR overlapping one is refused. */
  readonly localCidrs: readonly string[];
  /** The active gateway node (the Lease's holder), or undefined when none is known. */
  readonly gateway: GatewayNode | undefined;
  /** How this node reaches the gateway node (ignored on the gateway node itself). */
  readonly mode: Mode;
  readonly remotes: readonly RemoteView[];
  /** On the active gateway node: nodes in vxlan mode, for the return path. */
  readonly vxlanPeers: readonly VxlanPeer[];
  readonly table: number;
  readonly pref: number;
}

export interface RouteSpec {
  readonly table: number;
  readonly dst: string;
  readonly type: 'unicast' | 'unreachable';
  readonly via?: string;
  readonly dev?: string;
  readonly onlink?: boolean;
  readonly mtu?: number;
}

export interface RuleSpec {
  readonly pref: number;
  readonly table: number | 'main';
  readonly from?: string;
  readonly to?: string;
  readonly suppressPrefixLength?: number;
}

export interface FilterSpec {
  /** Remote CIDRs routed by this node: traffic from and to them is never masqueraded, and TCP MSS is clamped. */
  readonly remoteCidrs: readonly string[];
}

/** The intra-cluster VXLAN device of vxlan mode (on a vxlan-mode node, and on the gateway when it has vxlan peers). */
export interface TunnelSpec {
  readonly localIp: string;
  /** Peers by underlay address: the gateway (from a node), or the vxlan-mode nodes (from the gateway). */
  readonly peers: readonly string[];
}

export interface Routed {
  readonly cluster: string;
  readonly cidrs: readonly string[];
  /** 'cable' on the active gateway node, else the gateway node's name; '' when no gateway is known. */
  readonly via: string;
  readonly mode: Mode | 'cable' | 'none';
  readonly mtu?: number;
}

export interface Desired {
  readonly routes: readonly RouteSpec[];
  readonly rules: readonly RuleSpec[];
  readonly filter: FilterSpec;
  readonly tunnel: TunnelSpec | undefined;
  readonly routed: readonly Routed[];
  readonly refused: readonly { cluster: string; reason: string }[];
}

export const TUNNEL_DEV = 'isthmus-ra';
/** The tunnel address of a node: 240.b.c.d for node address a.b.c.d (class E, never routed on an underlay). */
export function tunnelIp(nodeIp: string): string {
  const parts = nodeIp.split('.');
  return `240.${parts[1] ?? '0'}.${parts[2] ?? '0'}.${parts[3] ?? '0'}`;
}
/** The tunnel device's MAC of a node, derived from its address so every node knows every other's. */
export function tunnelMac(nodeIp: string): string {
  return ['02', '1a', ...nodeIp.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}
/** VXLAN overhead on an IPv4 underlay: 20 IP + 8 UDP + 8 VXLAN + 14 inner Ethernet. */
export const VXLAN_OVERHEAD = 50;
/** The MTU used when the gateway has not published the cable's yet: the smallest our drivers make on a 1500 underlay. */
export const FALLBACK_MTU = 1400;

const RESERVED: readonly Cidr[] = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4'].map(parseCidr);

function checkCidr(s: string): Cidr | string {
  let c: Cidr;
  try {
    c = parseCidr(s);
  } catch {
    return `"${s}" is not a CIDR`;
  }
  if (c.family !== 4) return `${s}: IPv6 remote CIDRs are not routed yet`;
  if (c.prefix < 8) return `${s} is broader than a /8`;
  const reserved = RESERVED.find((r) => cidrsOverlap(r, c));
  if (reserved !== undefined) return `${s} overlaps a reserved range`;
  return c;
}

function validate(view: AgentView, r: RemoteView): { cidrs: Cidr[] } | { reason: string } {
  if (r.cidrs.length === 0) return { reason: 'no CIDR published for it (the gateway refused its cable, or it has none: see the Gateway status)' };
  const cidrs: Cidr[] = [];
  const locals = view.localCidrs.flatMap((s) => {
    try {
      return [parseCidr(s)];
    } catch {
      return [];
    }
  });
  const own = [view.node.ip, ...view.node.addresses, ...(view.gateway === undefined ? [] : [view.gateway.ip])];
  for (const s of r.cidrs) {
    const c = checkCidr(s);
    if (typeof c === 'string') return { reason: c };
    const local = locals.find((l) => cidrsOverlap(l, c));
    if (local !== undefined) return { reason: `${s} overlaps this cluster's ${view.localCidrs[locals.indexOf(local)]}` };
    const mine = own.find((a) => {
      try {
        return parseIp(a).family === 4 && cidrContains(c, a);
      } catch {
        return false;
      }
    });
    if (mine !== undefined) return { reason: `${s} contains ${mine}, an address of this node or its gateway` };
    cidrs.push(c);
  }
  return { cidrs };
}

const byCluster = (a: { cluster: string }, b: { cluster: string }): number => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0);

export function desiredRoutes(view: AgentView): Desired {
  const refused: { cluster: string; reason: string }[] = [];
  const valid: { cluster: string; cidrs: Cidr[]; texts: string[]; mtu?: number }[] = [];
  const seen = new Set<string>();
  for (const r of [...view.remotes].sort(byCluster)) {
    if (seen.has(r.cluster)) {
      refused.push({ cluster: r.cluster, reason: 'published twice' });
      continue;
    }
    seen.add(r.cluster);
    const v = validate(view, r);
    if ('reason' in v) refused.push({ cluster: r.cluster, reason: v.reason });
    else valid.push({ cluster: r.cluster, cidrs: v.cidrs, texts: [...r.cidrs], ...(r.mtu === undefined ? {} : { mtu: r.mtu }) });
  }
  // two remote clusters claiming overlapping addresses: refuse both, make their CIDRs unreachable
  const clash = new Set<string>();
  for (const a of valid) {
    for (const b of valid) {
      if (a !== b && a.cidrs.some((x) => b.cidrs.some((y) => cidrsOverlap(x, y)))) {
        clash.add(a.cluster);
        if (!refused.some((f) => f.cluster === a.cluster)) refused.push({ cluster: a.cluster, reason: `its CIDRs overlap those of ${b.cluster}` });
      }
    }
  }
  const routedClusters = valid.filter((v) => !clash.has(v.cluster));
  const blackholed = valid.filter((v) => clash.has(v.cluster)).flatMap((v) => v.texts);
  const isGateway = view.gateway !== undefined && view.gateway.name === view.node.name;
  const routes: RouteSpec[] = [];
  const rules: RuleSpec[] = [];
  const routed: Routed[] = [];
  const unreachable = (dst: string): RouteSpec => ({ table: view.table, dst, type: 'unreachable' });
  const all = [...routedClusters.flatMap((v) => v.texts), ...blackholed];
  let tunnel: TunnelSpec | undefined;
  if (isGateway) {
    for (const dst of all) {
      routes.push(unreachable(dst));
      rules.push({ pref: view.pref - 2, table: 'main', to: dst, suppressPrefixLength: 0 });
    }
    for (const v of routedClusters) routed.push({ cluster: v.cluster, cidrs: v.texts, via: 'cable', mode: 'cable', ...(v.mtu === undefined ? {} : { mtu: v.mtu }) });
    const peers = [...view.vxlanPeers].filter((p) => p.ip !== view.node.ip).sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
    if (peers.length > 0 && all.length > 0) {
      tunnel = { localIp: view.node.ip, peers: peers.map((p) => p.ip) };
      for (const p of peers) routes.push({ table: view.table + 1, dst: p.podCidr, type: 'unicast', via: tunnelIp(p.ip), dev: TUNNEL_DEV, onlink: true });
      for (const src of all) rules.push({ pref: view.pref - 3, table: view.table + 1, from: src });
    }
  } else {
    const gw = view.gateway;
    if (gw !== undefined && view.mode === 'vxlan') tunnel = { localIp: view.node.ip, peers: [gw.ip] };
    for (const v of routedClusters) {
      const mtu = v.mtu ?? FALLBACK_MTU;
      for (const dst of v.texts) {
        if (gw === undefined) routes.push(unreachable(dst));
        else if (view.mode === 'direct') routes.push({ table: view.table, dst, type: 'unicast', via: gw.ip, mtu });
        else routes.push({ table: view.table, dst, type: 'unicast', via: tunnelIp(gw.ip), dev: TUNNEL_DEV, onlink: true, mtu: Math.min(mtu, 1500 - VXLAN_OVERHEAD) });
      }
      routed.push({ cluster: v.cluster, cidrs: v.texts, via: gw?.name ?? '', mode: gw === undefined ? 'none' : view.mode, ...(v.mtu === undefined ? {} : { mtu: v.mtu }) });
    }
    for (const dst of blackholed) routes.push(unreachable(dst));
  }
  if (routes.some((r) => r.table === view.table)) rules.push({ pref: view.pref, table: view.table });
  rules.sort((a, b) => a.pref - b.pref || (a.to ?? a.from ?? '').localeCompare(b.to ?? b.from ?? ''));
  return {
    routes,
    rules,
    filter: { remoteCidrs: routedClusters.flatMap((v) => v.texts) },
    tunnel,
    routed,
    refused: refused.sort(byCluster),
  };
}
