import { int, optionalStr, str } from '../core/index.ts';

// `isthmus policy`'s usage and the options its controller and agent share (no dependencies:
// the dispatcher in policy.ts loads each subcommand's file only when it runs).

export const POLICY_USAGE = [
  'isthmus policy test --from CLUSTER/NS/POD --to CLUSTER/NS/POD:PORT [--protocol TCP|UDP|SCTP] [--kubeconfig F]',
  '       (contexts of the kubeconfig named after the member clusters; exit 0 allowed, 1 denied)',
  'isthmus policy apply -f FILE [-n NAMESPACE] [--context C] [--kubeconfig F]',
  'isthmus policy controller --cluster ID --broker HOST:PORT[,HOST:PORT] --broker-tls-dir DIR [options]   (--help for all)',
  'isthmus policy agent --cluster ID --node NAME [options]   (--help for all)',
].join('\n');

export const commonPolicyOptions = {
  cluster: str('this cluster\'s id (default: $CLUSTER_ID)', process.env['CLUSTER_ID'] || undefined),
  namespace: str('namespace of the mirrored policy state (default isthmus-system)', 'isthmus-system'),
  resyncMs: int('ms between full reconciles (default 5000)', 5000, 200, 600_000),
  metrics: optionalStr('host:port to serve Prometheus metrics at /metrics and probes at /healthz, /readyz (default off)'),
  kubeconfig: optionalStr('kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('kubeconfig context'),
};
