import type { CableSpec, CableStatus } from './cable/driver.ts';
import type { RttStats } from './health.ts';
import type { NatDiscoveryState } from './nat-discovery.ts';

/**
 * The `Gateway` resource's status (isthmus.dev/v1alpha1), built by a pure function
 * from the driver's view of each cable and the health probes. A cable the driver
 * calls connected but whose last `lostToFail` probes all went unanswered is reported
 * as `error` ("no answer to health probes"): the driver's handshake can be older
 * than the path's death. `natDiscovery` tells what the NAT probe of the remote found
 * (absent when it publishes no nat-probe port or this gateway does not probe).
 * Never holds a secret: only public endpoint data.
 */
export interface ConnectionStatus {
  cluster: string;
  status: 'connected' | 'connecting' | 'error';
  statusMessage?: string;
  endpoint: string;
  usingIP: string;
  /**
   * The remote cluster's CIDRs this gateway routes into the cable: what the route agents route
   * to it (and, while the cable is down or refused, make unreachable). Empty for a cable refused
   * because of its CIDRs (holding this node's, the broker's or a peer's address, or not
   * unicast): those must not be routed anywhere.
   */
  subnets: string[];
  /** Path MTU for inner packets through the cable, when the OS has a route for it. */
  mtu?: number;
  natTraversal: boolean;
  natDiscovery?: NatDiscoveryState;
  rtt?: { lastMs?: number; minMs?: number; avgMs?: number; maxMs?: number; stddevMs?: number };
  loss?: number;
  rxBytes?: number;
  txBytes?: number;
}

export interface GatewayStatus {
  haStatus: 'active' | 'passive';
  summary: string;
  averageRTT: string;
  statusFailure?: string;
  localEndpoint: {
    clusterID: string; hostname: string; privateIP: string; publicIP: string;
    /** By the broker's observed address or by a NAT probe. */
    behindNAT: boolean;
    /** A remote gateway's NAT probe answer saw this gateway at another address than its private one. */
    natSeenByProbe: boolean;
    cableDriver: string; port: number;
    /** The driver's implementationInfo() (kernel module, wireguard-go build, charon data path), when known. */
    cableImplementation?: string;
  };
  connections: ConnectionStatus[];
}

export interface StatusInput {
  readonly active: boolean;
  readonly local: GatewayStatus['localEndpoint'];
  readonly desired: readonly CableSpec[];
  readonly failed: ReadonlyMap<string, string>;
  /** Cables refused by screening for their CIDRs: published without subnets. */
  readonly refused?: ReadonlySet<string>;
  readonly cables: readonly CableStatus[];
  readonly health: ReadonlyMap<string, RttStats & { dead: boolean }>;
  readonly nat: ReadonlyMap<string, NatDiscoveryState>;
  /** Path MTU of each cable (see path-mtu.ts). */
  readonly mtus?: ReadonlyMap<string, number>;
  readonly failure?: string;
}

const round = (n: number | undefined): number | undefined => (n === undefined ? undefined : Math.round(n * 1000) / 1000);

export function gatewayStatus(input: StatusInput): GatewayStatus {
  const connections: ConnectionStatus[] = input.active
    ? input.desired.map((d) => {
        const cable = input.cables.find((c) => c.remoteCluster === d.remoteCluster);
        const h = input.health.get(d.remoteCluster);
        const failed = input.failed.get(d.remoteCluster);
        let status: ConnectionStatus['status'] = cable?.state ?? 'connecting';
        let message = failed ?? cable?.message;
        if (failed !== undefined) status = 'error';
        else if (status === 'connected' && h?.dead === true) {
          status = 'error';
          message = 'no answer to health probes through the cable';
        }
        const c: ConnectionStatus = {
          cluster: d.remoteCluster,
          status,
          endpoint: `${d.remoteIp}:${d.remotePort}`,
          usingIP: d.remoteIp,
          subnets: input.refused?.has(d.remoteCluster) === true ? [] : [...d.remoteCidrs],
          natTraversal: d.natTraversal,
        };
        const mtu = input.mtus?.get(d.remoteCluster);
        if (mtu !== undefined) c.mtu = mtu;
        if (message !== undefined) c.statusMessage = message;
        const nat = input.nat.get(d.remoteCluster);
        if (nat !== undefined) c.natDiscovery = nat;
        if (h !== undefined && h.sent > 0) {
          const rtt: NonNullable<ConnectionStatus['rtt']> = {};
          for (const [k, v] of [['lastMs', h.lastMs], ['minMs', h.minMs], ['avgMs', h.avgMs], ['maxMs', h.maxMs], ['stddevMs', h.stddevMs]] as const) {
            const r = round(v);
            if (r !== undefined) rtt[k] = r;
          }
          c.rtt = rtt;
          c.loss = round(h.loss) ?? 0;
        }
        if (cable?.rxBytes !== undefined) c.rxBytes = cable.rxBytes;
        if (cable?.txBytes !== undefined) c.txBytes = cable.txBytes;
        return c;
      })
    : [];
  const connected = connections.filter((c) => c.status === 'connected');
  const avgs = connected.map((c) => c.rtt?.avgMs).filter((v): v is number => v !== undefined);
  const status: GatewayStatus = {
    haStatus: input.active ? 'active' : 'passive',
    summary: input.active ? `${connected.length}/${connections.length}` : '-',
    averageRTT: avgs.length === 0 ? '-' : `${(avgs.reduce((a, b) => a + b, 0) / avgs.length).toFixed(3)}ms`,
    localEndpoint: input.local,
    connections,
  };
  if (input.failure !== undefined) status.statusFailure = input.failure;
  return status;
}
