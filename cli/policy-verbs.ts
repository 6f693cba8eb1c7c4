import { readFile } from 'node:fs/promises';
import { ErrorCodes, IsthmusError, Lifecycle, MetricsServer, createLogger, messageOf, str, validateConfig } from '../core/index.ts';
import { loadKubeConfig } from '../core/k8s.ts';
import { PolicyController, PolicyMetrics, applyPolicies, parsePodRef, policiesOfManifest, testFlow } from '../policy/index.ts';
import { brokerClientFromDir, brokerOption } from './broker-client.ts';
import { opt, optionRecord, optionsHelp, parseArgs, usageError } from './args.ts';
import { POLICY_USAGE as USAGE, commonPolicyOptions as common } from './policy-options.ts';

// `isthmus policy controller|test|apply` (they load @kubernetes/client-node; the node agent is policy-agent.ts).

const controllerSchema = {
  ...common,
  broker: brokerOption(),
  brokerTlsDir: str('directory with this cluster\'s broker certificate (tls.crt, tls.key, ca.crt)'),
};

export async function runController(argv: readonly string[]): Promise<number> {
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

/** `isthmus policy test|apply`: ClusterSetNetworkPolicy from the command line (logic in policy/ops.ts). */
export async function runPolicyVerb(argv: readonly string[]): Promise<number> {
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
}
