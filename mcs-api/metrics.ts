import { Counter, Gauge, Registry, collectDefaultMetrics } from '../core/prom.ts';

/**
 * The MCS controller's Prometheus metrics (prefix isthmus_mcs_). Labels carry only the
 * side (export, import), the result and cluster ids: never a Service name (unbounded).
 */
export class McsMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'side' | 'result'>;
  readonly publishes: Counter;
  readonly unhealthy: Gauge<'cluster'>;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'isthmus_mcs_' });
    this.reconciles = new Counter({ name: 'isthmus_mcs_reconciles_total', help: 'Reconciles by side (export, import) and result (ok, error)', labelNames: ['side', 'result'], registers: [this.registry] });
    this.publishes = new Counter({ name: 'isthmus_mcs_export_publishes_total', help: 'Export records sent to the broker (unchanged ones are not sent)', registers: [this.registry] });
    this.unhealthy = new Gauge({ name: 'isthmus_mcs_cluster_unhealthy', help: '1 while a remote cluster\'s endpoints are marked not ready (cable down)', labelNames: ['cluster'], registers: [this.registry] });
  }

  setUnhealthy(all: Iterable<string>, unhealthy: ReadonlySet<string>): void {
    this.unhealthy.reset();
    for (const c of all) this.unhealthy.set({ cluster: c }, unhealthy.has(c) ? 1 : 0);
  }
}
