import { Lifecycle, MetricsServer, SystemRunner, bool, createLogger, custom, int, list, oneOf, optionalStr, parseCidr, str, validateConfig } from '../core/index.ts';
import { KubeRest, loadKubeTarget } from '../core/kube-lite.ts';
import { IptablesFilter, NftFilter, RouteAgent, RouteAgentMetrics, chooseFilter, cleanupNode } from '../route-agent/index.ts';
import { optionRecord, optionsHelp, parseArgs } from './args.ts';
import type { Command } from './command.ts';

const checkedCidr = custom('a CIDR', (raw) => {
  if (typeof raw !== 'string' || raw === '') throw new Error('is required');
  parseCidr(raw);
  return raw;
});

const schema = {
  cluster: optionalStr('this cluster\'s id, for the logs (default: $CLUSTER_ID)'),
  node: str('this node\'s name (default: $NODE_NAME)', process.env['NODE_NAME'] || undefined),
  podCidrs: list('this cluster\'s pod CIDRs (a remote CIDR overlapping one is refused)', checkedCidr),
  serviceCidrs: list('this cluster\'s service CIDRs', checkedCidr),
  mode: oneOf('how a node reaches the gateway node: direct (on-link), vxlan (tunnel), auto (default: direct when on-link)', ['auto', 'direct', 'vxlan'] as const, 'auto'),
  filter: oneOf('packet filter: nftables, iptables, auto (default: nftables when it works)', ['auto', 'nftables', 'iptables'] as const, 'auto'),
  table: int('routing table of the route agent (it also owns table+1; strongSwan uses 220, the ipsec driver 219) (default 230)', 230, 1, 252),
  pref: int('rule preference of its table (it also owns pref-2 and pref-3) (default 230)', 230, 4, 32000),
  resyncMs: int('ms between full reconciles, the safety net behind the kernel change monitors (and the only repair of iptables chains) (default 30000)', 30_000, 500, 600_000),
  namespace: str('namespace of the gateway Lease, the Gateways and the RouteAgents (default isthmus-system)', 'isthmus-system'),
  leaseName: str('name of the gateway Lease (default isthmus-gateway)', 'isthmus-gateway'),
  metrics: optionalStr('host:port to serve Prometheus metrics at /metrics and probes at /healthz, /readyz (default off)'),
  cleanup: bool('remove every route, rule, chain and device of the route agent on this node, then exit (default false)', false),
  kubeconfig: optionalStr('kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('kubeconfig context'),
};

export const routeAgentCommand: Command = {
  name: 'route-agent',
  async run(argv) {
    const args = parseArgs(argv, new Set(['cleanup', 'help']));
    if (args.options.has('help')) {
      process.stdout.write(optionsHelp('isthmus route-agent [options]', schema));
      return 0;
    }
    const cfg = validateConfig(schema, optionRecord(args), 'route-agent options');
    const cluster = cfg.cluster ?? process.env['CLUSTER_ID'];
    const logger = createLogger({ component: 'route-agent', ...(cluster === undefined ? {} : { cluster }) }).child({ node: cfg.node });
    const runner = new SystemRunner();
    if (cfg.cleanup) {
      // whatever backend made them: both are looked at, each removes only its own table or chains
      const filters = cfg.filter === 'auto' ? [new NftFilter(runner), new IptablesFilter(runner)] : [await chooseFilter(runner, cfg.filter)];
      await cleanupNode(runner, filters, cfg.table, cfg.pref);
      logger.info('removed every route, rule, chain and device of the route agent');
      return 0;
    }
    const filter = await chooseFilter(runner, cfg.filter);
    const kube = new KubeRest(loadKubeTarget({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) }));
    const metrics = new RouteAgentMetrics();
    const agent = new RouteAgent({
      nodeName: cfg.node, namespace: cfg.namespace, leaseName: cfg.leaseName, localCidrs: [...cfg.podCidrs, ...cfg.serviceCidrs],
      mode: cfg.mode, table: cfg.table, pref: cfg.pref, resyncMs: cfg.resyncMs,
    }, { kube, runner, filter, logger, metrics });
    logger.info({ filter: filter.name, mode: cfg.mode }, 'route agent starting');
    const services = cfg.metrics === undefined ? [agent] : [new MetricsServer(metrics.registry, cfg.metrics, async () => agent.ready), agent];
    await new Lifecycle(services, logger).runUntilSignal();
    return 0;
  },
};
