import { createWriteStream } from 'node:fs';
import { Lifecycle, MetricsServer, SystemRunner, bool, createLogger, int, oneOf, optionalStr, str, validateConfig } from '../core/index.ts';
import { KubeRest, loadKubeTarget } from '../core/kube-lite.ts';
import { PolicyAgent } from '../policy/agent.ts';
import { AuditLog } from '../policy/audit.ts';
import { IptablesPolicyTable, choosePolicyTable } from '../policy/ipt.ts';
import { PolicyMetrics } from '../policy/metrics.ts';
import { NftPolicyTable } from '../policy/nft.ts';
import { optionRecord, optionsHelp, parseArgs } from './args.ts';
import { commonPolicyOptions as common } from './policy-options.ts';

// `isthmus policy agent`: one per node. It imports policy/'s files directly, not policy/index.ts,
// and talks to Kubernetes through kube-lite, so it never loads @kubernetes/client-node.

const agentSchema = {
  ...common,
  node: str('this node\'s name: its pods are the destinations it governs (default: $NODE_NAME)', process.env['NODE_NAME'] || undefined),
  auditLog: optionalStr('file the audit log is appended to, one JSON line per flow (default: stdout)'),
  auditMs: int('ms between reads of the audit sets (default 1000)', 1000, 100, 60_000),
  auditSeconds: int('a flow is logged once per this many seconds (default 60)', 60, 1, 86_400),
  auditRate: int('audit lines per second at most; more are counted, not written (default 100)', 100, 1, 100_000),
  cutFlows: bool('when a rule stops allowing a flow, cut it (its next packet meets the new rules) instead of letting it run to its end (default false)', false),
  filter: oneOf('packet filter: nftables, iptables (with ipset), auto (default: nftables when it works)', ['auto', 'nftables', 'iptables'] as const, 'auto'),
  cleanup: bool('remove the node\'s policy table (both backends\'), then exit (default false)', false),
};

export async function runAgent(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['cleanup', 'cut-flows', 'help']));
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp('isthmus policy agent [options]', agentSchema));
    return 0;
  }
  const cfg = validateConfig(agentSchema, optionRecord(args), 'policy agent options');
  const logger = createLogger({ component: 'policy-agent', cluster: cfg.cluster }).child({ node: cfg.node });
  const runner = new SystemRunner();
  const nft = new NftPolicyTable(runner);
  const ipt = new IptablesPolicyTable(runner);
  if (cfg.cleanup) {
    for (const t of cfg.filter === 'auto' ? [nft, ipt] : [cfg.filter === 'nftables' ? nft : ipt]) await t.cleanup();
    logger.info('removed the node\'s policy rules');
    return 0;
  }
  const table = await choosePolicyTable(cfg.filter, nft, ipt);
  const kube = new KubeRest(loadKubeTarget({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) }));
  const out = cfg.auditLog === undefined ? undefined : createWriteStream(cfg.auditLog, { flags: 'a' });
  const metrics = new PolicyMetrics();
  const audit = new AuditLog({ write: (line) => (out ?? process.stdout).write(`${line}\n`), maxPerSecond: cfg.auditRate, onFlow: (t) => metrics.flow(t) });
  const agent = new PolicyAgent({ cluster: cfg.cluster, nodeName: cfg.node, namespace: cfg.namespace, resyncMs: cfg.resyncMs, auditMs: cfg.auditMs, auditSeconds: cfg.auditSeconds, cutFlows: cfg.cutFlows }, { kube, table, runner, audit, logger, metrics });
  const services = cfg.metrics === undefined ? [agent] : [new MetricsServer(metrics.registry, cfg.metrics, async () => agent.ready), agent];
  await new Lifecycle(services, logger).runUntilSignal();
  out?.end();
  return 0;
}
