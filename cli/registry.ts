import type { Command } from './command.ts';

/**
 * The `isthmus` commands, explicit (no side-effect registration): name → one-line summary,
 * the words a shell completes after it, and a loader. A command is loaded only when run:
 * each lives in its own file and stays thin, and does not pay for the others' dependencies
 * (the route agent on every node would otherwise load the broker's gRPC, etcd and Kubernetes
 * client libraries). Invariant, checked by completion.test.ts: `words` lists exactly the
 * options each command's `--help` names, so completion never offers what a command refuses.
 */
export interface Words {
  /** options of the command whatever its subcommand (short ones such as `-o` included) */
  readonly flags: readonly string[];
  /** subcommands (or the first positional's choices), each with the words only it takes: options, or its own subcommands (`certs ca create`) */
  readonly sub?: Readonly<Record<string, readonly string[]>>;
}

export interface Entry {
  readonly summary: string;
  readonly words: Words;
  load(): Promise<Command>;
}

const KUBE = ['--kubeconfig', '--context'] as const;
const BROKER_CLIENT = ['--cluster', '--broker', '--broker-tls-dir'] as const;

export function registry(): Map<string, Entry> {
  return new Map<string, Entry>([
    ['certs', {
      summary: 'create the clusterset CA, issue and renew certificates, WireGuard keys, IPsec PSKs',
      words: {
        flags: ['--out', '--name', '--days', '--ca', '--revoke-previous', '--cluster', '--admin', '--server', '--san', '--gateway', '--etcd', '--serial', '--cert', '--reason', '--dir', '--force'],
        sub: { ca: ['create', 'rotate'], issue: [], revoke: [], renew: [], show: [], wireguard: [], psk: [] },
      },
      load: async () => (await import('./certs.ts')).certsCommand,
    }],
    ['broker', {
      summary: 'serve the clusterset broker (gRPC over etcd, mTLS); broker deploy puts it in a cluster, broker token mints join tokens',
      words: {
        flags: ['--etcd', '--listen', '--tls-dir', '--global-addressing', '--global-cidr-pool', '--global-cidr-prefix', '--quotas', '--limits', '--allowed-cidrs', '--join-listen', '--join-ca-dir', '--metrics'],
        sub: {
          deploy: [...KUBE, '--address', '--ca', '--cable-driver', '--cluster-id', '--etcd-members', '--etcd-storage', '--global-addressing', '--image', '--node-selector', '--out', '--replicas', '--service-type', '--timeout', '--token-ttl'],
          token: [...KUBE, '--cluster-id', '--out', '--timeout', '--token-ttl'],
          'etcd-bootstrap': ['--name', '--initial-cluster', '--data-dir', '--config-file', '--listen-client-urls', '--listen-peer-urls', '--client-port', '--probe-seconds', '--timeout', '--etcd-option'],
        },
      },
      load: async () => (await import('./broker.ts')).brokerCommand,
    }],
    ['join', {
      summary: 'join a cluster to the clusterset of a broker-info.json (checks first, then installs Isthmus)',
      words: { flags: [...KUBE, '--cluster-id', '--cable-driver', '--gateway-nodes', '--label-gateway', '--nat-traversal', '--public-ip', '--pod-cidrs', '--service-cidrs', '--image', '--wait', '--timeout', '--dry-run'] },
      load: async () => (await import('./join.ts')).joinCommand,
    }],
    ['gateway', {
      summary: 'run the gateway engine: active/passive, cables to every remote cluster, health, Gateway status',
      words: {
        flags: [...KUBE, ...BROKER_CLIENT, '--hostname', '--driver', '--private-ip', '--public-ip', '--port', '--pod-cidrs', '--service-cidrs', '--health-check-ip', '--health-port', '--health-interval',
          '--force-nat', '--nat-probe-port', '--metrics', '--namespace', '--lease-name', '--lease-ms', '--renew-deadline-ms', '--max-lease-ms', '--retry-ms', '--resync-ms', '--endpoint-ttl', '--private-sockets', '--state-dir',
          '--tls-dir', '--tls-name', '--psk-file', '--insecure-shared-psk'],
      },
      load: async () => (await import('./gateway.ts')).gatewayCommand,
    }],
    ['route-agent', {
      summary: 'run the route agent on a node: remote CIDRs to the active gateway, no masquerade, MSS clamp, fail closed',
      words: { flags: [...KUBE, '--cluster', '--node', '--pod-cidrs', '--service-cidrs', '--mode', '--filter', '--table', '--pref', '--resync-ms', '--namespace', '--lease-name', '--metrics', '--cleanup'] },
      load: async () => (await import('./route-agent.ts')).routeAgentCommand,
    }],
    ['leave', {
      summary: 'take this cluster out of the clusterset (its records at the broker; every cable to it goes)',
      words: { flags: [...BROKER_CLIENT] },
      load: async () => (await import('./leave.ts')).leaveCommand,
    }],
    ['export', {
      summary: 'export a Service to the clusterset (creates its ServiceExport)',
      words: { flags: [...KUBE, '-n', '--wait', '--timeout'], sub: { service: [] } },
      load: async () => (await import('./mcs-verbs.ts')).exportCommand,
    }],
    ['unexport', {
      summary: 'stop exporting a Service (deletes its ServiceExport)',
      words: { flags: [...KUBE, '-n'], sub: { service: [] } },
      load: async () => (await import('./mcs-verbs.ts')).unexportCommand,
    }],
    ['show', {
      summary: 'show gateways, connections, endpoints, networks, exports, imports, versions or all of a cluster',
      words: { flags: [...KUBE, '-o'], sub: { connections: [], endpoints: [], gateways: [], networks: [], exports: [], imports: [], versions: [], all: [] } },
      load: async () => (await import('./show.ts')).showClustersetCommand,
    }],
    ['mcs', {
      summary: 'run the MCS controller: ServiceExports to the broker, ServiceImports and EndpointSlices from it',
      words: { flags: [...KUBE, ...BROKER_CLIENT, '--gateway-namespace', '--dns-service', '--dns-address', '--metrics', '--coalesce-ms', '--workers'] },
      load: async () => (await import('./mcs.ts')).mcsCommand,
    }],
    ['policy', {
      summary: 'ClusterSetNetworkPolicy: test a cross-cluster flow, apply policies, run the controller or the node agent',
      words: {
        flags: [...KUBE],
        sub: {
          test: ['--from', '--to', '--protocol'],
          apply: ['-f', '-n'],
          controller: [...BROKER_CLIENT, '--metrics', '--namespace', '--resync-ms'],
          agent: ['--cluster', '--node', '--audit-log', '--audit-ms', '--audit-rate', '--audit-seconds', '--cleanup', '--cut-flows', '--filter', '--metrics', '--namespace', '--resync-ms'],
        },
      },
      load: async () => (await import('./policy.ts')).policyCommand,
    }],
    ['dns', {
      summary: 'serve clusterset.local (ClusterSet DNS 1.0.0) from the cluster\'s ServiceImports',
      words: { flags: [...KUBE, '--listen', '--metrics'] },
      load: async () => (await import('./dns.ts')).dnsCommand,
    }],
    ['diagnose', {
      summary: 'check the clusterset: joins, gateways and cables, route agents, CoreDNS, certificates, broker records, clock skew, gateway ports by probe',
      words: { flags: [...KUBE, '-o', '--max-clock-skew', '--skip-probes'] },
      load: async () => (await import('./diagnose.ts')).diagnoseCommand,
    }],
    ['verify', {
      summary: 'test connectivity and service discovery between two joined clusters (JUnit report; --disruptive adds gateway failover)',
      words: { flags: [...KUBE, '--tocontext', '--disruptive', '--junit', '--timeout', '-o'] },
      load: async () => (await import('./verify.ts')).verifyCommand,
    }],
    ['benchmark', {
      summary: 'measure pod-to-pod throughput (iperf3) or latency (p50/p90/p99) between two joined clusters',
      words: { flags: [...KUBE, '--tocontext', '--duration', '--count', '--timeout', '-o'], sub: { throughput: [], latency: [] } },
      load: async () => (await import('./benchmark.ts')).benchmarkCommand,
    }],
    ['gather', {
      summary: 'collect objects and logs of Isthmus from clusters into one archive (secrets redacted)',
      words: { flags: [...KUBE, '--out'] },
      load: async () => (await import('./gather.ts')).gatherCommand,
    }],
    ['uninstall', {
      summary: 'take a cluster out of the clusterset and remove everything of Isthmus from it',
      words: { flags: [...KUBE, '--broker', '--image', '--timeout'] },
      load: async () => (await import('./uninstall.ts')).uninstallCommand,
    }],
    ['sandbox', {
      summary: 'a clusterset of real clusters on this machine (up, down, status, kubeconfig)',
      words: {
        flags: ['--dir'],
        sub: {
          up: ['--clusters', '--nodes', '--gateways', '--nat', '--node-cidr-mask', '--overlapping', '--proxy-mode', '--proxy-min-sync', '--port-base', '--timeout'],
          down: [], status: [], demo: [], exec: ['-n'], echo: ['--ports'], agnhost: [], kubeconfig: [],
        },
      },
      load: async () => (await import('./sandbox.ts')).sandboxCommand,
    }],
    ['completion', {
      summary: 'print a bash or zsh completion script: source <(isthmus completion bash)',
      words: { flags: [], sub: { bash: [], zsh: [] } },
      load: async () => (await import('./completion.ts')).completionCommand,
    }],
  ]);
}

/** `isthmus --help`. */
export function help(commands: ReadonlyMap<string, Entry>): string {
  const lines = ['usage: isthmus <command> [options]', '', 'commands:'];
  for (const [name, c] of commands) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', 'Run `isthmus <command> --help` for a command\'s options, `isthmus --version` for the version.');
  return lines.join('\n');
}
