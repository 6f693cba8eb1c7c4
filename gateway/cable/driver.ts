import type { CommandRunner, Logger } from '../../core/index.ts';

/**
 * A cable is the encrypted (or, for vxlan, plain) tunnel from this cluster's active
 * gateway to one remote cluster's active gateway. A CableDriver owns every cable of
 * one kind on this gateway.
 *
 * Invariants every driver keeps:
 * - `preflight()` changes nothing; it fails with MISSING_DEPENDENCY, naming the Debian
 *   package, when a program the driver needs is not installed. The engine calls it at
 *   start, so a passive gateway reports a missing program before it is ever needed.
 * - `init()` creates what the driver needs once (device, daemon, keys loaded) and adopts
 *   what already exists: a gateway process restart never tears a working cable down.
 * - `set(desired)` makes the cables exactly `desired` (keyed by `remoteCluster`): it adds
 *   and updates before it deletes, touches nothing whose spec did not change, and calling
 *   it twice with the same input changes nothing the second time (no OS command that
 *   modifies state runs). A bad spec fails only its own cable: the result lists it with
 *   the reason and every other cable is still applied.
 * - `connections()` reports every cable `set` was given, with its state as the OS sees it.
 * - `cleanup()` removes everything the driver made (devices, SAs, routes, daemons) and
 *   is safe to call when nothing exists.
 * - Secrets (private keys, PSKs) never appear in logs, errors or status.
 * - `implementationInfo()` reads nothing from the OS: it reports what init() chose.
 */
export type CableDriverName = 'wireguard' | 'ipsec' | 'vxlan';

export interface LocalEndpoint {
  readonly clusterId: string;
  /** The address this gateway sends from and listens on. */
  readonly privateIp: string;
  /** UDP port the cables listen on (wireguard 51820, ipsec 500/4500 NAT-T, vxlan 4789 by default). */
  readonly port: number;
  /** This cluster's CIDRs (pods, services, or its global CIDR). */
  readonly cidrs: readonly string[];
  /** Driver secrets: wireguard `privateKey` (base64); ipsec `certPem`, `keyPem`, `caPem`, or `psk`. */
  readonly secrets: Readonly<Record<string, string>>;
}

export interface CableSpec {
  readonly remoteCluster: string;
  /** The address and port to reach the remote gateway at (private or public, chosen by NAT discovery). */
  readonly remoteIp: string;
  readonly remotePort: number;
  /** The remote cluster's CIDRs: routed into this cable. */
  readonly remoteCidrs: readonly string[];
  /** Force UDP encapsulation (ipsec) / persistent keepalive (wireguard) because NAT was found. */
  readonly natTraversal: boolean;
  /** Driver-specific public data from the remote Endpoint (wireguard `public-key`, ipsec `cert-cn`, vxlan `vni`). */
  readonly backend: Readonly<Record<string, string>>;
}

export type CableState = 'connected' | 'connecting' | 'error';

export interface CableStatus {
  readonly remoteCluster: string;
  readonly state: CableState;
  /** Why, for `error` and `connecting`; never contains a secret. */
  readonly message?: string;
  readonly remoteIp: string;
  readonly rxBytes?: number;
  readonly txBytes?: number;
  /** Last handshake / SA establishment, ms since the epoch. */
  readonly establishedAt?: number;
}

export interface SetResult {
  /** Cables whose spec was refused or whose OS change failed, with the reason. */
  readonly failed: readonly { remoteCluster: string; reason: string }[];
}

export interface DriverDeps {
  readonly runner: CommandRunner;
  readonly logger: Logger;
}

export interface CableDriver {
  readonly name: CableDriverName;
  preflight(): Promise<void>;
  init(local: LocalEndpoint): Promise<void>;
  set(desired: readonly CableSpec[]): Promise<SetResult>;
  connections(): Promise<readonly CableStatus[]>;
  cleanup(): Promise<void>;
  /**
   * Which implementation carries the cables, for logs and the Gateway status (like
   * "kernel", "wireguard-go v0.0.20250522 (/usr/local/libexec/isthmus/wireguard-go)" or
   * "charon, xfrm data path"); undefined before init() decided it.
   */
  implementationInfo(): string | undefined;
  /**
   * The device the cables' routes leave by (the WireGuard or VXLAN device, kernel-libipsec's
   * TUN); undefined when they leave by the underlay itself (kernel XFRM) or before init()
   * decided. The path MTU is measured only on a route through it (path-mtu.ts).
   */
  routeDevice(): string | undefined;
}

/**
 * The specs in remote-cluster order, without those that name no remote cluster or
 * name one twice: those are added to `refused` with the reason. Every driver's plan
 * starts here.
 */
export function uniqueSpecs(specs: readonly CableSpec[], refused: { remoteCluster: string; reason: string }[]): CableSpec[] {
  const seen = new Set<string>();
  const out: CableSpec[] = [];
  for (const spec of [...specs].sort((a, b) => (a.remoteCluster < b.remoteCluster ? -1 : a.remoteCluster > b.remoteCluster ? 1 : 0))) {
    if (typeof spec.remoteCluster !== 'string' || spec.remoteCluster === '') {
      refused.push({ remoteCluster: spec.remoteCluster, reason: 'the cable has no remote cluster id' });
    } else if (seen.has(spec.remoteCluster)) {
      refused.push({ remoteCluster: spec.remoteCluster, reason: 'the remote cluster appears twice in the desired cables' });
    } else {
      seen.add(spec.remoteCluster);
      out.push(spec);
    }
  }
  return out;
}
