import { getHeapStatistics } from 'node:v8';
import { Lifecycle, MetricsServer, bool, createLogger, custom, int, list, optionalStr, str, validateConfig, formatCidr, parseCidr } from '../core/index.ts';
import { BrokerServer, DEFAULT_GLOBAL_CIDR_POOL, parseConnectionLimits, parseQuotas } from '../broker/index.ts';
import { JoinServer } from '../broker/join.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { brokerDeploy, brokerToken } from './broker-deploy.ts';
import { brokerEtcdBootstrap } from './broker-etcd-bootstrap.ts';

const USAGE = `isthmus broker --etcd URLS --listen ADDR --tls-dir DIR [options]
       isthmus broker deploy --context C [options]    (see isthmus broker deploy --help)
       isthmus broker token --context C [options]     (see isthmus broker token --help)
       isthmus broker etcd-bootstrap --name N …       (the etcd members' init container; see its --help)

  Serves the clusterset's broker (gRPC, mTLS) over etcd. Stateless: run several
  replicas against one etcd cluster, all with the same options.

  --etcd URLS                 etcd client URLs, comma-separated (e.g. http://10.0.0.5:2379)
  --listen ADDR               host:port to serve gRPC on (default 0.0.0.0:7443)
  --tls-dir DIR               tls.crt, tls.key and ca.crt from \`isthmus certs issue --server --san … --out DIR\`
  --global-addressing         give each cluster a non-overlapping global CIDR (overlapping pod
                              and service CIDRs are then allowed) (default: off)
  --global-cidr-pool CIDR     the pool global CIDRs come from; implies --global-addressing
                              (default 242.0.0.0/8)
  --global-cidr-prefix N      size of each cluster's global block (default 16)
  --quotas NAME=N,…           per-cluster limits (defaults: maxRecords=5000, maxBytes=33554432,
                              maxEndpoints=16, maxRecordBytes=262144, writesPerSecond=100,
                              writeBurst=1000, maxWatches=8)
  --limits NAME=N,…           connection limits (defaults: maxConnections=1024,
                              maxConnectionsPerPeer=16, idleTimeoutMs=120000,
                              maxConcurrentStreams=32, maxConnectionIdleMs=300000,
                              maxNewConnectionsPerSecond=200)
  --allowed-cidrs CIDRS       ranges member pod and service CIDRs must lie in, comma-separated
                              (default the private ranges 10.0.0.0/8,172.16.0.0/12,
                              192.168.0.0/16,100.64.0.0/10,fc00::/7)
  --join-listen ADDR          serve the join API (HTTPS: join tokens, certificates for joining
                              clusters) on host:port (default: off)
  --join-ca-dir DIR           the clusterset CA (ca.crt, ca.key) the join API signs with
  --metrics ADDR              serve Prometheus metrics at http://ADDR/metrics and probes at
                              /healthz and /readyz (default: off)

  Memory: with Node's default heap sizing a busy broker keeps several hundred MB it no
  longer uses; run it with NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=2"
  (see BENCHMARKS.md) or under a container memory limit, which Node sizes its heap to.`;

const schema = {
  etcd: list('etcd client URLs', custom('etcd URL', (raw) => {
    const s = String(raw);
    if (!/^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(s)) throw new Error(`"${s}" is not an etcd client URL such as http://127.0.0.1:2379`);
    return s;
  })),
  listen: str('gRPC listen address (default 0.0.0.0:7443)', '0.0.0.0:7443', /^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'is not host:port'),
  tlsDir: str('directory with tls.crt, tls.key, ca.crt'),
  globalAddressing: bool('allocate global CIDRs (default false)', false),
  globalCidrPool: custom('global CIDR pool (default 242.0.0.0/8 under global addressing)', (raw) => (raw === undefined || raw === '' ? undefined : formatCidr(parseCidr(String(raw))))),
  globalCidrPrefix: int('global block prefix length (default 16)', 16, 1, 128),
  metrics: optionalStr('metrics listen address (default off)'),
  joinListen: optionalStr('join API listen address (default off)'),
  joinCaDir: optionalStr('clusterset CA folder for the join API'),
  quotas: custom('per-cluster quotas (default DEFAULT_QUOTAS)', (raw) => (raw === undefined || raw === '' ? undefined : parseQuotas(String(raw)))),
  limits: custom('connection limits (default DEFAULT_CONNECTION_LIMITS)', (raw) => (raw === undefined || raw === '' ? undefined : parseConnectionLimits(String(raw)))),
  allowedCidrs: list('allowed CIDRs (default the private ranges)', custom('CIDR', (raw) => formatCidr(parseCidr(String(raw))))),
};

async function run(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'deploy') return brokerDeploy(argv.slice(1));
  if (argv[0] === 'token') return brokerToken(argv.slice(1));
  if (argv[0] === 'etcd-bootstrap') return brokerEtcdBootstrap(argv.slice(1));
  const args = parseArgs(argv, new Set(['help', 'global-addressing']));
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const config = validateConfig(schema, optionRecord(args), 'broker options');
  if (config.etcd.length === 0) throw usageError('--etcd is required', USAGE);
  const logger = createLogger({ component: 'broker' });
  const heapLimitMb = Math.round(getHeapStatistics().heap_size_limit / 1048576);
  if (heapLimitMb > 512) {
    logger.info({ heapLimitMb }, 'V8 may grow the heap far beyond what the broker uses; set NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=2" to keep RSS near 300 MB (see BENCHMARKS.md)');
  }
  const pool = config.globalCidrPool ?? (config.globalAddressing ? DEFAULT_GLOBAL_CIDR_POOL : undefined);
  const broker = new BrokerServer({
    etcdHosts: config.etcd, listen: config.listen, tlsDir: config.tlsDir, logger,
    ...(config.allowedCidrs.length === 0 ? {} : { allowedCidrs: config.allowedCidrs }),
    ...(config.quotas === undefined ? {} : { quotas: config.quotas }),
    ...(config.limits === undefined ? {} : { connections: config.limits }),
    ...(pool === undefined ? {} : { globalCidrPool: pool, globalCidrPrefix: config.globalCidrPrefix }),
  });
  if ((config.joinListen === undefined) !== (config.joinCaDir === undefined)) throw usageError('--join-listen and --join-ca-dir go together', USAGE);
  const joinApi = config.joinListen === undefined || config.joinCaDir === undefined ? [] : [new JoinServer({
    etcdHosts: config.etcd, listen: config.joinListen, tlsDir: config.tlsDir, caDir: config.joinCaDir, logger, registry: broker.metrics,
    ...(config.allowedCidrs.length === 0 ? {} : { allowedCidrs: config.allowedCidrs }),
    ...(pool === undefined ? {} : { globalCidrPool: pool, globalCidrPrefix: config.globalCidrPrefix }),
  })];
  const services = [broker, ...joinApi, ...(config.metrics === undefined ? [] : [new MetricsServer(broker.metrics, config.metrics, () => broker.ready())])];
  await new Lifecycle(services, logger).runUntilSignal();
  return 0;
}

/** `isthmus broker …`: serve the broker. */
export const brokerCommand: Command = {
  name: 'broker',
  run,
};
