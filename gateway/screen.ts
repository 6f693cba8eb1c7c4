import { isIP } from 'node:net';
import { addressProblem, cidrHolding, nonUnicastCidrProblem } from '../core/index.ts';
import type { CableSpec } from './cable/driver.ts';

/**
 * What a receiver refuses whatever the broker let through (defence in depth: a member
 * with a valid certificate, or a broken broker, must not redirect this node's traffic).
 * Pure: the cables desiredCables built, and what this gateway knows about itself.
 *
 * A cable is refused, with the reason, when
 * - its remote address is not unicast, or its port is privileged (other than IKE's);
 * - a remote CIDR is not a unicast range, or contains one of this node's own addresses,
 *   any peer's cable address (its own included: its tunnel would carry itself) or the
 *   broker's address — routing it into the cable would hijack that traffic;
 * - it shares its WireGuard public key or IPsec identity (cert-cn) with another
 *   cable: every cable holding it is refused, none is chosen;
 * - its IPsec identity is not "<gateway>.<remote cluster>".
 * A health-check address must be unicast and inside the remote's CIDRs, else the cable
 * is kept but not probed (`healthProblem`).
 */
export interface ScreenContext {
  /** This node's addresses (gateway private, public and observed addresses, interface addresses). */
  readonly ownAddresses: readonly string[];
  /** Addresses the broker is reached at. */
  readonly brokerAddresses: readonly string[];
}

export interface Refusal {
  readonly remoteCluster: string;
  readonly reason: string;
  /**
   * The CIDRs themselves are the reason (not unicast, or holding an address of this node, the
   * broker or a peer): they must be routed nowhere, not even made unreachable. Other refusals
   * (a shared key, a bad identity or address) leave CIDRs that are fine to fail closed on.
   */
  readonly badCidrs?: true;
}

const IDENTITY_FIELDS = ['public-key', 'cert-cn'] as const;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function screenCables(specs: readonly CableSpec[], ctx: ScreenContext): { accepted: CableSpec[]; refused: Refusal[] } {
  const peerAddresses = specs.map((s) => ({ cluster: s.remoteCluster, ip: s.remoteIp }));
  const holders = new Map<string, string[]>();
  for (const s of specs) {
    for (const f of IDENTITY_FIELDS) {
      const v = s.backend[f];
      if (v === undefined || v === '') continue;
      const k = `${f}\0${v}`;
      holders.set(k, [...(holders.get(k) ?? []), s.remoteCluster]);
    }
  }
  const accepted: CableSpec[] = [];
  const refused: Refusal[] = [];
  for (const s of specs) {
    const cidrReason = cidrProblem(s, ctx, peerAddresses);
    const reason = cidrReason ?? problem(s, holders);
    if (reason === undefined) accepted.push(s);
    else refused.push({ remoteCluster: s.remoteCluster, reason, ...(cidrReason === undefined ? {} : { badCidrs: true as const }) });
  }
  return { accepted, refused };
}

/** Why the spec's CIDRs may be routed nowhere, or undefined. */
function cidrProblem(s: CableSpec, ctx: ScreenContext, peers: readonly { cluster: string; ip: string }[]): string | undefined {
  for (const c of s.remoteCidrs) {
    const nu = nonUnicastCidrProblem(c);
    if (nu !== undefined) return `refused: remote CIDR ${nu}`;
  }
  const own = ctx.ownAddresses.find((a) => cidrHolding(s.remoteCidrs, a) !== undefined);
  if (own !== undefined) return `refused: remote CIDR ${cidrHolding(s.remoteCidrs, own) ?? ''} contains this gateway's own address ${own}`;
  const broker = ctx.brokerAddresses.find((a) => cidrHolding(s.remoteCidrs, a) !== undefined);
  if (broker !== undefined) return `refused: remote CIDR ${cidrHolding(s.remoteCidrs, broker) ?? ''} contains the broker's address ${broker}`;
  const peer = peers.find((p) => cidrHolding(s.remoteCidrs, p.ip) !== undefined);
  if (peer !== undefined) return `refused: remote CIDR ${cidrHolding(s.remoteCidrs, peer.ip) ?? ''} contains the cable address ${peer.ip} of cluster ${peer.cluster}`;
  return undefined;
}

function problem(s: CableSpec, holders: ReadonlyMap<string, readonly string[]>): string | undefined {
  const bad = addressProblem(s.remoteIp);
  if (bad !== undefined) return `refused: its gateway address ${bad}`;
  const port = s.remotePort;
  if (!Number.isInteger(port) || port < 1 || port > 65_535 || (port < 1024 && port !== 500 && port !== 4500)) {
    return `refused: its port ${String(port).slice(0, 16)} is not 1024-65535 (or 500/4500 for IKE)`;
  }
  for (const f of IDENTITY_FIELDS) {
    const v = s.backend[f];
    if (v === undefined || v === '') continue;
    const others = (holders.get(`${f}\0${v}`) ?? []).filter((c) => c !== s.remoteCluster);
    if (others.length > 0) return `refused: its ${f} is also published by cluster ${others.join(', ')}; no cable uses a shared ${f}`;
  }
  const cn = s.backend['cert-cn'];
  if (cn !== undefined && cn !== '' && !(cn.endsWith(`.${s.remoteCluster}`) && LABEL.test(cn.slice(0, -s.remoteCluster.length - 1)))) {
    return `refused: its IPsec identity ${JSON.stringify(cn.slice(0, 80))} is not "<gateway>.${s.remoteCluster}"`;
  }
  return undefined;
}

const isStr = (v: unknown): v is string => typeof v === 'string';
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every(isStr);
const isStrMap = (v: unknown): v is Record<string, string> => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(isStr);

/**
 * Why a relayed Endpoint record does not have the shape the engine reads, or undefined.
 * The broker validates what it stores, but the client decodes whatever it is sent: a
 * record of the wrong shape is skipped (and logged), never allowed to make the reconcile
 * of every other cable throw.
 */
export function endpointShapeProblem(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return 'not an object';
  const r = e as Record<string, unknown>;
  for (const f of ['cluster_id', 'hostname', 'private_ip', 'public_ip', 'cable_driver', 'health_check_ip', 'observed_source_ip']) {
    if (!isStr(r[f])) return `${f} is not a string`;
  }
  if (!Array.isArray(r['ports']) || !r['ports'].every((p) => typeof p === 'object' && p !== null && isStr((p as Record<string, unknown>)['name']) && typeof (p as Record<string, unknown>)['port'] === 'number' && isStr((p as Record<string, unknown>)['protocol']))) {
    return 'ports is not a list of {name, port, protocol}';
  }
  if (!isStrMap(r['backend_config'])) return 'backend_config is not a map of strings';
  return undefined;
}

/** Why a relayed Cluster record does not have the shape the engine reads, or undefined. */
export function clusterShapeProblem(c: unknown): string | undefined {
  if (typeof c !== 'object' || c === null) return 'not an object';
  const r = c as Record<string, unknown>;
  if (!isStr(r['cluster_id']) || !isStr(r['global_cidr'])) return 'cluster_id or global_cidr is not a string';
  if (!isStrList(r['pod_cidrs']) || !isStrList(r['service_cidrs'])) return 'pod_cidrs or service_cidrs is not a list of strings';
  return undefined;
}

/** A refused spec as the Gateway status may show it: a remote address that is no IP is not copied there. */
export function displayable(s: CableSpec): CableSpec {
  return isIP(s.remoteIp) === 0 ? { ...s, remoteIp: '(not an IP address)' } : s;
}

/** Why `address` may not be health-probed for a remote with `cidrs`, or undefined. */
export function healthProblem(address: string, cidrs: readonly string[]): string | undefined {
  const bad = addressProblem(address);
  if (bad !== undefined) return bad;
  if (cidrHolding(cidrs, address) === undefined) return `${address} is outside the remote's CIDRs (${cidrs.join(', ')})`;
  return undefined;
}
