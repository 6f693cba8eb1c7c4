import { ErrorCodes, IsthmusError, sleep, systemClock } from '../core/index.ts';
import { loadKubeConfig } from '../core/k8s.ts';
import {
  checkName, exportOutcome, exportService, formatExports, formatImports, getExport, listExports, listImports, unexportService, type OutputFormat,
} from '../mcs-api/ops.ts';
import { opt, parseArgs, usageError, type Args } from './args.ts';
import type { Command } from './command.ts';

/** `isthmus export service`, `isthmus unexport service`, `isthmus show exports|imports`. */
const EXPORT_USAGE = 'isthmus export service NAME -n NAMESPACE [--context C] [--kubeconfig F] [--wait] [--timeout SECONDS]';
const UNEXPORT_USAGE = 'isthmus unexport service NAME -n NAMESPACE [--context C] [--kubeconfig F]';
const SHOW_USAGE = 'isthmus show exports|imports [-n NAMESPACE | --all-namespaces] [-o table|json|yaml] [--context C] [--kubeconfig F]';

function kube(args: Args): ReturnType<typeof loadKubeConfig> {
  const kubeconfig = opt(args, 'kubeconfig');
  const context = opt(args, 'context');
  return loadKubeConfig({ ...(kubeconfig === undefined ? {} : { kubeconfig }), ...(context === undefined ? {} : { context }) });
}

function target(args: Args, usage: string): { namespace: string; name: string } {
  const [kind, name, ...extra] = args.positionals;
  if (kind !== 'service' && kind !== 'svc') throw usageError(`expected "service NAME", got ${JSON.stringify(args.positionals.join(' '))}`, usage);
  if (name === undefined || extra.length > 0) throw usageError('name exactly one Service', usage);
  const namespace = opt(args, 'namespace');
  if (namespace === undefined) throw usageError('-n NAMESPACE is required', usage);
  checkName('service', name);
  checkName('namespace', namespace);
  return { namespace, name };
}

export const exportCommand: Command = {
  name: 'export',
  async run(argv) {
    const args = parseArgs(argv, new Set(['wait', 'help']));
    if (args.options.has('help')) {
      process.stdout.write(`usage: ${EXPORT_USAGE}\n`);
      return 0;
    }
    const { namespace, name } = target(args, EXPORT_USAGE);
    const timeoutS = Number(opt(args, 'timeout') ?? '60');
    if (!(timeoutS > 0 && timeoutS <= 3600)) throw usageError('--timeout must be 1..3600 seconds', EXPORT_USAGE);
    const kc = kube(args);
    const created = await exportService(kc, namespace, name);
    process.stdout.write(`serviceexport ${namespace}/${name} ${created ? 'created' : 'unchanged (already exported)'}\n`);
    if (!args.options.has('wait')) return 0;
    const deadline = Date.now() + timeoutS * 1000;
    for (;;) {
      const outcome = exportOutcome(await getExport(kc, namespace, name));
      if (outcome?.state === 'ready') {
        process.stdout.write(`${namespace}/${name}: ${outcome.message}\n`);
        return 0;
      }
      if (outcome?.state === 'invalid') throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `${namespace}/${name} cannot be exported: ${outcome.message}`);
      if (Date.now() > deadline) {
        throw new IsthmusError(ErrorCodes.TIMEOUT, `${namespace}/${name} was not exported within ${timeoutS} s: is \`isthmus mcs\` running in this cluster? (isthmus show exports -n ${namespace})`);
      }
      await sleep(systemClock, 500);
    }
  },
};

export const unexportCommand: Command = {
  name: 'unexport',
  async run(argv) {
    const args = parseArgs(argv, new Set(['help']));
    if (args.options.has('help')) {
      process.stdout.write(`usage: ${UNEXPORT_USAGE}\n`);
      return 0;
    }
    const { namespace, name } = target(args, UNEXPORT_USAGE);
    await unexportService(kube(args), namespace, name);
    process.stdout.write(`serviceexport ${namespace}/${name} deleted\n`);
    return 0;
  },
};

export const showCommand: Command = {
  name: 'show',
  async run(argv) {
    const args = parseArgs(argv, new Set(['all-namespaces', 'help']));
    if (args.options.has('help')) {
      process.stdout.write(`usage: ${SHOW_USAGE}\n`);
      return 0;
    }
    const [what, ...extra] = args.positionals;
    if ((what !== 'exports' && what !== 'imports') || extra.length > 0) throw usageError(`expected exports or imports, got ${JSON.stringify(args.positionals.join(' '))}`, SHOW_USAGE);
    const format = opt(args, 'output') ?? 'table';
    if (format !== 'table' && format !== 'json' && format !== 'yaml') throw usageError(`-o must be table, json or yaml, got ${JSON.stringify(format)}`, SHOW_USAGE);
    const namespace = args.options.has('all-namespaces') ? undefined : opt(args, 'namespace');
    if (namespace !== undefined) checkName('namespace', namespace);
    const kc = kube(args);
    const out = what === 'exports' ? formatExports(await listExports(kc, namespace), format as OutputFormat) : formatImports(await listImports(kc, namespace), format as OutputFormat);
    process.stdout.write(out);
    return 0;
  },
};
