import { Counter, Gauge, Registry, collectDefaultMetrics } from '../../core/prom.ts';

/** The DNS server's Prometheus metrics (prefix isthmus_dns_): replies by transport and rcode, Services indexed. */
export class DnsMetrics {
  readonly registry = new Registry();
  readonly replies: Counter<'transport' | 'rcode'>;
  readonly services: Gauge;

  /** `indexed` tells the number of Services in the index when metrics are scraped. */
  constructor(indexed: () => number) {
    collectDefaultMetrics({ register: this.registry, prefix: 'isthmus_dns_' });
    this.replies = new Counter({ name: 'isthmus_dns_replies_total', help: 'DNS replies sent, by transport and rcode', labelNames: ['transport', 'rcode'], registers: [this.registry] });
    this.services = new Gauge({
      name: 'isthmus_dns_services', help: 'Services in the clusterset.local index', registers: [this.registry],
      collect() {
        this.set(indexed());
      },
    });
  }
}
