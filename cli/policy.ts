import { readFile } from 'node:fs/promises';
import { ErrorCodes, IsthmusError, messageOf } from '../core/index.ts';
import { loadKubeConfig } from '../core/k8s.ts';
import { applyPolicies, parsePodRef, policiesOfManifest, testFlow } from '../policy/ops.ts';
import { opt, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';

const USAGE = [
  'isthmus policy test --from CLUSTER/NS/POD --to CLUSTER/NS/POD:PORT [--protocol TCP|UDP|SCTP] [--kubeconfig F]',
  '       (contexts of the kubeconfig named after the member clusters; exit 0 allowed, 1 denied)',
  'isthmus policy apply -f FILE [-n NAMESPACE] [--context C] [--kubeconfig F]',
].join('\n');

/** `isthmus policy test|apply`: ClusterSetNetworkPolicy from the command line (logic in policy/ops.ts). */
export const policyCommand: Command = {
  name: 'policy',
  summary: 'ClusterSetNetworkPolicy: test what a cross-cluster flow meets, apply policies',
  async run(argv) {
    const args = parseArgs(argv, new Set(['help']));
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
      const file = opt(args, 'f') ?? opt(args, 'filename');
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
