import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from '../core/prom.ts';
import type { AuditTag } from './compile.ts';

/**
 * The policy agent's Prometheus metrics (prefix isthmus_policy_). Flows are counted per
 * policy, rule and verdict (label values are policy keys and rule names, never addresses).
 */
export class PolicyMetrics {
  readonly registry = new Registry();
  readonly #flows: Counter<'policy' | 'rule' | 'verdict'>;
  readonly #suppressed: Counter;
  readonly #rules: Gauge;
  readonly #elements: Gauge;
  readonly #problems: Gauge;
  readonly #applies: Counter<'result'>;
  readonly #apply: Histogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'isthmus_policy_' });
    this.#flows = new Counter({ name: 'isthmus_policy_flows_total', help: 'Cross-cluster flows a policy allowed or denied, by policy, rule and verdict', labelNames: ['policy', 'rule', 'verdict'], registers });
    this.#suppressed = new Counter({ name: 'isthmus_policy_audit_suppressed_total', help: 'Audit lines not written because of the rate limit', registers });
    this.#rules = new Gauge({ name: 'isthmus_policy_rules', help: 'nftables rules of the node\'s policy table', registers });
    this.#elements = new Gauge({ name: 'isthmus_policy_set_elements', help: 'Pod IPs in the policy table\'s sets', registers });
    this.#problems = new Gauge({ name: 'isthmus_policy_refused_records', help: 'Policy or identity records refused by validation at this node', registers });
    this.#applies = new Counter({ name: 'isthmus_policy_applies_total', help: 'Rulesets sent to the kernel, by result', labelNames: ['result'], registers });
    this.#apply = new Histogram({ name: 'isthmus_policy_apply_seconds', help: 'Time to compile and apply a changed ruleset', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers });
  }

  flow(tag: AuditTag): void {
    this.#flows.inc({ policy: tag.policy, rule: tag.rule, verdict: tag.action });
  }

  suppressed(n: number): void {
    if (n > 0) this.#suppressed.inc(n);
  }

  applied(result: 'ok' | 'failed', seconds: number, rules: number, elements: number, problems: number): void {
    this.#applies.inc({ result });
    if (result === 'ok') this.#apply.observe(seconds);
    this.#rules.set(rules);
    this.#elements.set(elements);
    this.#problems.set(problems);
  }
}
