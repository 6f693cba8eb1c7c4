import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ErrorCodes, IsthmusError, Lifecycle, MetricsServer, SystemRunner, bool, createLogger, int, messageOf, oneOf, optionalStr, str, validateConfig } from '../core/index.ts';
import { loadKubeConfig } from '../core/k8s.ts';
import { AuditLog, IptablesPolicyTable, NftPolicyTable, choosePolicyTable, PolicyAgent, PolicyController, PolicyMetrics, applyPolicies, parsePodRef, policiesOfManifest, testFlow } from '../policy/index.ts';
import { brokerClientFromDir } from './broker-client.ts';
import { opt, optionRecord, optionsHelp, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';

const USAGE = [
  'isthmus policy test --from CLUSTER/NS/POD --to CLUSTER/NS/POD:PORT [--protocol TCP|UDP|SCTP] [--kubeconfig F]',
  '       (contexts of the kubeconfig named after the member clusters; exit 0 allowed, 1 denied)',
  'isthmus policy apply -f FILE [-n NAMESPACE] [--context C] [--kubeconfig F]',
  'isthmus policy controller --cluster ID --broker HOST:PORT --broker-tls-dir DIR [options]   (--help for all)',
  'isthmus policy agent --cluster ID --node NAME [options]   (--help for all)',
].join('\n');

const common = {
  cluster: str('this cluster\'s id (default: $CLUSTER_ID)', process.env['CLUSTER_ID'] || undefined),
  namespace: str('namespace of the mirrored policy state (default isthmus-system)', 'isthmus-system'),
  resyncMs: int('ms between full reconciles (default 5000)', 5000, 200, 600_000),
  metrics: optionalStr('host:port to serve Prometheus metrics at /metrics and probes at /healthz, /readyz (default off)'),
  kubeconfig: optionalStr('kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('kubeconfig context'),
};
const controllerSchema = {
  ...common,
  broker: str('host:port of the broker'),
  brokerTlsDir: str('directory with this cluster\'s broker certificate (tls.crt, tls.key, ca.crt)'),
};
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

async function runController(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help']));
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp('isthmus policy controller [options]', controllerSchema));
    return 0;
  }
  const cfg = validateConfig(controllerSchema, optionRecord(args), 'policy controller options');
  const logger = createLogger({ component: 'policy-controller', cluster: cfg.cluster });
  const kubeConfig = loadKubeConfig({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) });
  // a call that fails is tried again at the next resync: never hold a reconcile for long while the broker is away
  const broker = brokerClientFromDir(cfg.broker, cfg.brokerTlsDir, logger, { retryForMs: 1_000 });
  const controller = new PolicyController({ cluster: cfg.cluster, namespace: cfg.namespace, resyncMs: cfg.resyncMs }, { kubeConfig, broker, logger });
  const services = cfg.metrics === undefined ? [controller] : [new MetricsServer(new PolicyMetrics().registry, cfg.metrics, async () => controller.ready), controller];
  await new Lifecycle(services, logger).runUntilSignal();
  broker.close();
  return 0;
}

async function runAgent(argv: readonly string[]): Promise<number> {
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
  const kubeConfig = loadKubeConfig({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) });
  const out = cfg.auditLog === undefined ? undefined : createWriteStream(cfg.auditLog, { flags: 'a' });
  const metrics = new PolicyMetrics();
  const audit = new AuditLog({ write: (line) => (out ?? process.stdout).write(`${line}\n`), maxPerSecond: cfg.auditRate, onFlow: (t) => metrics.flow(t) });
  const agent = new PolicyAgent({ cluster: cfg.cluster, nodeName: cfg.node, namespace: cfg.namespace, resyncMs: cfg.resyncMs, auditMs: cfg.auditMs, auditSeconds: cfg.auditSeconds, cutFlows: cfg.cutFlows }, { kubeConfig, table, runner, audit, logger, metrics });
  const services = cfg.metrics === undefined ? [agent] : [new MetricsServer(metrics.registry, cfg.metrics, async () => agent.ready), agent];
  await new Lifecycle(services, logger).runUntilSignal();
  out?.end();
  return 0;
}

/** `isthmus policy test|apply`: ClusterSetNetworkPolicy from the command line (logic in policy/ops.ts). */
export const policyCommand: Command = {
  name: 'policy',
  async run(argv) {
    if (argv[0] === 'controller') return runController(argv.slice(1));
    if (argv[0] === 'agent') return runAgent(argv.slice(1));
    // kubectl's -f FILE
    const args = parseArgs(argv.map((a) => (a === '-f' ? '--filename' : a)), new Set(['help']));
    const verb = args.positionals[0];
    if (args.options.has('help') || verb === undefined) {
      process.stdout.write(`usage: ${USAGE}\n`);
      return verb === undefined && !args.options.has('help') ? 2 : 0;
    }
    const kubeconfig = opt(args, 'kubeconfig');
    if (verb === 'test') {
      const fromText = opt(args, 'from');
      const toText = opt(args, 'to');
      if (fromText === undefined || toText === undefined) throw usageError('--from and --to are required', USAGE);
      const protocol = (opt(args, 'protocol') ?? 'TCP').toUpperCase();
      if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') throw usageError(`--protocol must be TCP, UDP or SCTP, got ${protocol}`, USAGE);
      const from = parsePodRef(fromText, false);
      const to = parsePodRef(toText, true);
      const answer = await testFlow(loadKubeConfig(kubeconfig === undefined ? {} : { kubeconfig }), from, to, protocol);
      for (const i of answer.invalid) process.stderr.write(`warning: not used: ${i}\n`);
      const v = answer.verdict;
      process.stdout.write(`${v.action === 'Allow' ? 'ALLOWED' : 'DENIED'}  ${fromText} → ${toText}/${protocol}\n  ${v.reason}\n`);
      return v.action === 'Allow' ? 0 : 1;
    }
    if (verb === 'apply') {
      const file = opt(args, 'filename');
      if (file === undefined) throw usageError('-f FILE is required', USAGE);
      const text = await readFile(file, 'utf8').catch((err: unknown) => {
        throw new IsthmusError(ErrorCodes.NOT_FOUND, `cannot read ${file}: ${messageOf(err)}`);
      });
      const policies = policiesOfManifest(text, opt(args, 'namespace') ?? 'default');
      const context = opt(args, 'context');
      const kc = loadKubeConfig({ ...(kubeconfig === undefined ? {} : { kubeconfig }), ...(context === undefined ? {} : { context }) });
      for (const line of await applyPolicies(kc, policies)) process.stdout.write(`${line}\n`);
      return 0;
    }
    throw usageError(`unknown verb ${JSON.stringify(verb)}`, USAGE);
  },
};
