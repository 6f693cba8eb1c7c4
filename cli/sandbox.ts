import {
  SystemRunner, bool, createLogger, custom, int, list, oneOf, optionalStr, str, validateConfig,
} from '../core/index.ts';
import { DEFAULT_PORT_BASE, MAX_CLUSTERS, PROXY_MODES, Sandbox, kubeconfigPath, runDemo, sandboxDir, type UpOptions } from '../sandbox/index.ts';
import { runEchoCommand } from '../sandbox/echo.ts';
import { execIn, resolveNetns } from '../sandbox/exec.ts';
import { runKubelet } from '../sandbox/kubelet/main.ts';
import { runAgnhost } from '../sandbox/agnhost.ts';
import { optionRecord, parseArgs, usageError, type Args } from './args.ts';
import type { Command } from './command.ts';

const USAGE = `isthmus sandbox <up|down|status|kubeconfig> [options]

  up          start a clusterset of real clusters on this machine (needs root)
    --clusters N       number of clusters, 1..${MAX_CLUSTERS} (default 2)
    --nodes M          nodes per cluster, 1..16 (default 2)
    --gateways G       gateway-capable nodes per cluster (on the wan), 1..4, at most M (default 1)
    --nat cN[,cM]      put these clusters' gateway nodes behind a NAT router (default none)
    --node-cidr-mask K size of each node's pod CIDR, 17..29 (default 24)
    --overlapping      give every cluster the same pod and service CIDRs (default off)
    --proxy-mode M     kube-proxy mode: iptables, nftables or ipvs (default iptables)
    --proxy-min-sync MS kube-proxy's minimum time between rule syncs, 0..60000 ms (default: kube-proxy's, 1 s)
    --port-base P      first loopback port; cluster i uses P+10(i-1)..+3 (default ${DEFAULT_PORT_BASE})
    --timeout S        seconds to wait for each component (default 120)
  down        stop every process and remove every file, namespace and interface (needs root)
  status      list clusters and the health of their components
  demo        bring the sandbox up (if it is not) and show it working
  exec <context> <pod>|node/<node> [-n ns] -- <cmd>
              run a command inside a pod's (or node's) network namespace, with its resolv.conf
  echo [--ports P,…] the echo server the isthmus/echo image runs (TCP: HTTP, UDP: a line)
  agnhost <sub> …   what the e2e-test-images/agnhost image runs (netexec, serve-hostname, pause)
  kubeconfig  print the path of the kubeconfig with contexts c1..cN

  common: --dir DIR   the sandbox's state folder (default $ISTHMUS_SANDBOX_DIR or /var/lib/isthmus/sandbox)`;

const upSchema = {
  clusters: int(`number of clusters (default 2)`, 2, 1, MAX_CLUSTERS),
  overlapping: bool('same CIDRs in every cluster (default false)', false),
  proxyMode: oneOf('kube-proxy mode (default iptables)', PROXY_MODES, 'iptables'),
  proxyMinSync: custom('kube-proxy minimum sync period in ms (default kube-proxy\'s)', (raw) => (raw === undefined || raw === '' ? undefined : int('', undefined, 0, 60_000).parse(raw))),
  portBase: int(`first port (default ${DEFAULT_PORT_BASE})`, DEFAULT_PORT_BASE, 1024, 65535),
  nodes: int('nodes per cluster (default 2)', 2, 1, 16),
  gateways: int('gateway-capable nodes per cluster (default 1)', 1, 1, 4),
  nat: list('clusters behind NAT (default none)', str('cluster name')),
  nodeCidrMask: int('node pod CIDR size (default 24)', 24, 17, 29),
  timeout: int('seconds to wait for each component (default 120)', 120, 1, 3600),
  dir: optionalStr('state folder'),
};

function open(args: Args): Sandbox {
  const dir = sandboxDir(args.options.get('dir')?.at(-1));
  return new Sandbox({ dir, runner: new SystemRunner(), logger: createLogger({ component: 'sandbox' }) });
}

async function up(args: Args): Promise<number> {
  const sandbox = open(args);
  const started = Date.now();
  const { created, state } = await sandbox.up(upOptions(args));
  if (!created) {
    process.stdout.write(`sandbox is already up in ${sandbox.dir} with ${state.clusters.length} clusters; nothing changed\n`);
    return 0;
  }
  process.stdout.write(`sandbox up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${state.clusters.map((c) => c.name).join(', ')}\n`);
  for (const c of state.clusters) process.stdout.write(`  ${c.name}  ${c.server}  pods ${c.podCidr}  services ${c.serviceCidr}\n`);
  process.stdout.write(`kubeconfig: ${kubeconfigPath(sandbox.dir)}\n  export KUBECONFIG=${kubeconfigPath(sandbox.dir)}; kubectl --context c1 get ns\n`);
  return 0;
}

async function demo(args: Args): Promise<number> {
  const sandbox = open(args);
  // the demo's own defaults: three clusters, c3 behind NAT (each with a node that is not a gateway)
  const { state } = await sandbox.up(upOptions(args, args.options.has('clusters') ? {} : { clusters: '3', nat: 'c3' }));
  await runDemo(sandbox.dir, state, new SystemRunner(), (line) => process.stdout.write(line + '\n'));
  process.stdout.write(`\nkubectl: export KUBECONFIG=${kubeconfigPath(sandbox.dir)}; kubectl --context c1 get pods -A\nstop it: isthmus sandbox down\n`);
  return 0;
}

/** `defaults`: values for options the user did not give. */
function upOptions(args: Args, defaults: Record<string, string> = {}): UpOptions {
  const cfg = validateConfig(upSchema, { ...defaults, ...optionRecord(args) }, 'sandbox options');
  return {
    clusters: cfg.clusters, overlapping: cfg.overlapping, portBase: cfg.portBase, nodes: cfg.nodes, gateways: cfg.gateways,
    nat: cfg.nat, nodeCidrMask: cfg.nodeCidrMask, readyTimeoutS: cfg.timeout, proxyMode: cfg.proxyMode,
    ...(cfg.proxyMinSync === undefined ? {} : { proxyMinSyncMs: cfg.proxyMinSync }),
  };
}

async function status(args: Args): Promise<number> {
  const sandbox = open(args);
  const clusters = await sandbox.status();
  if (clusters === undefined) {
    process.stdout.write(`no sandbox in ${sandbox.dir}; start one with \`isthmus sandbox up\`\n`);
    return 3;
  }
  if (args.options.has('json')) {
    process.stdout.write(JSON.stringify(clusters, null, 2) + '\n');
  } else {
    for (const c of clusters) {
      process.stdout.write(`${c.name}  ${c.healthy ? 'healthy' : 'UNHEALTHY'}  ${c.server}  pods ${c.podCidr}  services ${c.serviceCidr}\n`);
      for (const p of c.components) {
        const what = !p.running ? 'not running' : p.healthy ? 'healthy' : 'running, not ready';
        process.stdout.write(`  ${p.name.padEnd(24)} pid ${String(p.pid).padEnd(8)} ${what}\n`);
      }
    }
  }
  return clusters.every((c) => c.healthy) ? 0 : 1;
}

async function down(args: Args): Promise<number> {
  const sandbox = open(args);
  const found = await sandbox.down();
  process.stdout.write(found ? `sandbox in ${sandbox.dir} is down; nothing is left behind\n` : `no sandbox in ${sandbox.dir}; nothing to do\n`);
  return 0;
}

export const sandboxCommand: Command = {
  name: 'sandbox',
  async run(argv) {
    const args = parseArgs(argv, new Set(['overlapping', 'json', 'help']));
    const [sub] = args.positionals;
    if (sub === undefined || args.options.has('help')) {
      process.stdout.write(USAGE + '\n');
      return sub === undefined && !args.options.has('help') ? 2 : 0;
    }
    switch (sub) {
      case 'up':
        return up(args);
      case 'down':
        return down(args);
      case 'status':
        return status(args);
      case 'demo':
        return demo(args);
      case 'exec': {
        const [, context, target] = args.positionals;
        const execUsage = 'isthmus sandbox exec <context> <pod>|node/<node> [-n namespace] -- <command…>';
        if (context === undefined || target === undefined || args.rest.length === 0) throw usageError('sandbox exec needs a context, a pod or node/<name>, and a command after --', execUsage);
        const netns = await resolveNetns(sandboxDir(args.options.get('dir')?.at(-1)), context, target, args.options.get('namespace')?.at(-1) ?? 'default');
        return execIn(netns, args.rest);
      }
      case 'echo':
        return runEchoCommand(argv.slice(1));
      case 'agnhost':
        return runAgnhost(argv.slice(1));
      case 'kubelet': {
        const dir = args.options.get('cluster-dir')?.at(-1);
        if (dir === undefined) throw usageError('sandbox kubelet needs --cluster-dir', 'isthmus sandbox kubelet --cluster-dir <sandbox>/clusters/<name>');
        return runKubelet(dir);
      }
      case 'kubeconfig':
        process.stdout.write(kubeconfigPath(sandboxDir(args.options.get('dir')?.at(-1))) + '\n');
        return 0;
      default:
        throw usageError(`unknown sandbox command "${sub}"`, USAGE);
    }
  },
};
