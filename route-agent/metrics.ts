import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from '../core/prom.ts';
import type { RouteAgentStatus } from './status.ts';

/**
 * The route agent's Prometheus metrics (prefix isthmus_route_agent_), fed from the status
 * it writes and from each reconcile. Labels carry cluster ids and states, never addresses.
 */
export class RouteAgentMetrics {
  readonly registry = new Registry();
  readonly #routes: Gauge;
  readonly #remotes: Gauge;
  readonly #isGateway: Gauge;
  readonly #errors: Gauge;
  readonly #reconciles: Counter;
  readonly #changes: Counter;
  readonly #gatewayChanges: Counter;
  readonly #duration: Histogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'isthmus_route_agent_' });
    this.#routes = new Gauge({ name: 'isthmus_route_agent_routes', help: 'Routes the route agent holds in its tables', registers });
    this.#remotes = new Gauge({ name: 'isthmus_route_agent_remote_clusters', help: 'Remote clusters by state (routed or refused)', labelNames: ['state'], registers });
    this.#isGateway = new Gauge({ name: 'isthmus_route_agent_is_gateway', help: '1 when this node is the active gateway', registers });
    this.#errors = new Gauge({ name: 'isthmus_route_agent_errors', help: 'Errors of the last reconcile', registers });
    this.#reconciles = new Counter({ name: 'isthmus_route_agent_reconciles_total', help: 'Reconciles by result', labelNames: ['result'], registers });
    this.#changes = new Counter({ name: 'isthmus_route_agent_changes_total', help: 'Route, rule, tunnel and filter changes applied to the OS', registers });
    this.#gatewayChanges = new Counter({ name: 'isthmus_route_agent_gateway_changes_total', help: 'Times the active gateway node changed', registers });
    this.#duration = new Histogram({ name: 'isthmus_route_agent_reconcile_duration_seconds', help: 'Duration of a reconcile', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers });
  }

  reconciled(result: 'ok' | 'failed', seconds: number, changes: number): void {
    this.#reconciles.inc({ result });
    this.#duration.observe(seconds);
    if (changes > 0) this.#changes.inc(changes);
  }

  gatewayChanged(): void {
    this.#gatewayChanges.inc();
  }

  update(s: RouteAgentStatus): void {
    this.#routes.set(s.routes);
    this.#remotes.set({ state: 'routed' }, s.remotes.length);
    this.#remotes.set({ state: 'refused' }, s.refused.length);
    this.#isGateway.set(s.mode === 'gateway' ? 1 : 0);
    this.#errors.set(s.errors.length);
  }
}
