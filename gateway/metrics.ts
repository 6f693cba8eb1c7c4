import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from '../core/prom.ts';
import type { ConnectionStatus, GatewayStatus } from './status.ts';

/**
 * The gateway's Prometheus metrics (prefix isthmus_gateway_), served by `isthmus gateway
 * --metrics ADDR`. Fed from the Gateway status the engine builds every tick
 * (updateFromStatus) and from each reconcile (reconciled), so the metrics never say
 * anything the status does not. Series of a remote cluster that is gone are removed.
 * Labels carry cluster ids, states and statistic names only: never an address or a secret.
 */
const STATUSES = ['connected', 'connecting', 'error'] as const;
const NAT_STATES = ['private', 'public', 'unanswered', 'pending'] as const;
const RTT_STATS = [['last', 'lastMs'], ['min', 'minMs'], ['avg', 'avgMs'], ['max', 'maxMs'], ['stddev', 'stddevMs']] as const;

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #active: Gauge;
  readonly #behindNat: Gauge;
  readonly #status: Gauge;
  readonly #rtt: Gauge;
  readonly #loss: Gauge;
  readonly #rx: Gauge;
  readonly #tx: Gauge;
  readonly #nat: Gauge;
  readonly #errors: Counter;
  readonly #reconciles: Counter;
  readonly #duration: Histogram;
  /** Each remote cluster's status at the last update. */
  #last = new Map<string, ConnectionStatus['status']>();

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'isthmus_gateway_' });
    const cluster = ['remote_cluster'];
    this.#active = new Gauge({ name: 'isthmus_gateway_active', help: '1 when this gateway holds the Lease (active), else 0', registers });
    this.#behindNat = new Gauge({ name: 'isthmus_gateway_behind_nat', help: '1 when the broker or a NAT probe saw this gateway at another address than its private one', registers });
    this.#status = new Gauge({ name: 'isthmus_gateway_connection_status', help: '1 for the current status of the cable to each remote cluster (connected, connecting, error), 0 for the others', labelNames: [...cluster, 'status'], registers });
    this.#rtt = new Gauge({ name: 'isthmus_gateway_connection_rtt_seconds', help: 'Round-trip time of the health probes through each cable, over the probe window', labelNames: [...cluster, 'stat'], registers });
    this.#loss = new Gauge({ name: 'isthmus_gateway_connection_loss_ratio', help: 'Unanswered health probes / sent, over the probe window (0..1)', labelNames: cluster, registers });
    this.#rx = new Gauge({ name: 'isthmus_gateway_connection_rx_bytes', help: 'Bytes received through each cable, as the cable driver counts them', labelNames: cluster, registers });
    this.#tx = new Gauge({ name: 'isthmus_gateway_connection_tx_bytes', help: 'Bytes sent through each cable, as the cable driver counts them', labelNames: cluster, registers });
    this.#nat = new Gauge({ name: 'isthmus_gateway_connection_nat_discovery', help: '1 for what the NAT probe of each remote gateway found (private, public, unanswered, pending), 0 for the others', labelNames: [...cluster, 'result'], registers });
    this.#errors = new Counter({ name: 'isthmus_gateway_connection_errors_total', help: 'Times the cable to each remote cluster went into error (spec refused, driver error, or health probes unanswered)', labelNames: cluster, registers });
    this.#reconciles = new Counter({ name: 'isthmus_gateway_reconciles_total', help: 'Cable reconciles by result (ok, failed)', labelNames: ['result'], registers });
    this.#duration = new Histogram({ name: 'isthmus_gateway_reconcile_duration_seconds', help: 'Time a cable reconcile took', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers });
    for (const result of ['ok', 'failed']) this.#reconciles.inc({ result }, 0);
  }

  reconciled(result: 'ok' | 'failed', seconds: number): void {
    this.#reconciles.inc({ result });
    this.#duration.observe(seconds);
  }

  updateFromStatus(status: GatewayStatus): void {
    this.#active.set(status.haStatus === 'active' ? 1 : 0);
    this.#behindNat.set(status.localEndpoint.behindNAT ? 1 : 0);
    const now = new Map<string, ConnectionStatus['status']>();
    for (const c of status.connections) {
      const remote_cluster = c.cluster;
      now.set(c.cluster, c.status);
      for (const s of STATUSES) this.#status.set({ remote_cluster, status: s }, c.status === s ? 1 : 0);
      if (!this.#last.has(c.cluster)) this.#errors.inc({ remote_cluster }, 0);
      if (c.status === 'error' && this.#last.get(c.cluster) !== 'error') this.#errors.inc({ remote_cluster });
      for (const [stat, key] of RTT_STATS) {
        const ms = c.rtt?.[key];
        setOrRemove(this.#rtt, { remote_cluster, stat }, ms === undefined ? undefined : ms / 1000);
      }
      setOrRemove(this.#loss, { remote_cluster }, c.loss);
      setOrRemove(this.#rx, { remote_cluster }, c.rxBytes);
      setOrRemove(this.#tx, { remote_cluster }, c.txBytes);
      for (const result of NAT_STATES) setOrRemove(this.#nat, { remote_cluster, result }, c.natDiscovery === undefined ? undefined : c.natDiscovery === result ? 1 : 0);
    }
    for (const remote_cluster of this.#last.keys()) {
      if (now.has(remote_cluster)) continue;
      for (const status of STATUSES) this.#status.remove({ remote_cluster, status });
      for (const [stat] of RTT_STATS) this.#rtt.remove({ remote_cluster, stat });
      for (const result of NAT_STATES) this.#nat.remove({ remote_cluster, result });
      for (const m of [this.#loss, this.#rx, this.#tx, this.#errors]) m.remove({ remote_cluster });
    }
    this.#last = now;
  }
}

function setOrRemove(g: Gauge, labels: Record<string, string>, value: number | undefined): void {
  if (value === undefined) g.remove(labels);
  else g.set(labels, value);
}
