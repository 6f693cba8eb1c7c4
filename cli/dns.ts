// core's files one by one, not core/index.ts: the DNS server does not load what it does not use (x509, exec, …)
import { optionalStr, str, validateConfig } from '../core/config.ts';
import { Lifecycle, type Service } from '../core/lifecycle.ts';
import { createLogger } from '../core/log.ts';
import { MetricsServer } from '../core/metrics-server.ts';
import { KubeRest, loadKubeTarget } from '../core/kube-lite.ts';
import { DnsMetrics, DnsServer, ZoneIndex, ZoneKeeper, parseListen } from '../mcs-api/dns/index.ts';
import { optionRecord, optionsHelp, parseArgs } from './args.ts';
import type { Command } from './command.ts';

const schema = {
  listen: str('address to serve DNS on, UDP and TCP (default 0.0.0.0:53)', '0.0.0.0:53'),
  kubeconfig: optionalStr('kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)'),
  context: optionalStr('kubeconfig context (default: its current context)'),
  metrics: optionalStr('serve Prometheus metrics, /healthz and /readyz on host:port (default off)'),
};

function usage(): string {
  return optionsHelp("isthmus dns [options]   authoritative DNS for clusterset.local, from the cluster's ServiceImports and MCS EndpointSlices", schema);
}

export const dnsCommand: Command = {
  name: 'dns',
  async run(argv) {
    const args = parseArgs(argv, new Set(['help']));
    if (args.options.has('help')) {
      process.stdout.write(usage());
      return 0;
    }
    const cfg = validateConfig(schema, optionRecord(args), 'dns options');
    parseListen(cfg.listen); // a bad address fails before anything starts
    const logger = createLogger({ component: 'dns' });
    const kube = new KubeRest(loadKubeTarget({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) }));
    const zone = new ZoneIndex();
    const metrics = new DnsMetrics(() => zone.size);
    const keeper = new ZoneKeeper(kube, zone, logger);
    let synced = false;
    void keeper.synced.then(() => {
      synced = true;
      logger.info({ services: zone.size }, 'clusterset.local index synced');
    }, () => {});
    const server = new DnsServer({ listen: cfg.listen, zone, replies: metrics.replies });
    const services: Service[] = [keeper, server];
    if (cfg.metrics !== undefined) services.unshift(new MetricsServer(metrics.registry, cfg.metrics, async () => synced));
    await new Lifecycle(services, logger).runUntilSignal();
    return 0;
  },
};
