import type { V1Service } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, Lifecycle, MetricsServer, createLogger, int, messageOf, optionalStr, str, validateConfig, type Service } from '../core/index.ts';
import { KubeRest, loadKubeTarget } from '../core/kube-lite.ts';
import { BrokerCache } from '../core/broker-api/index.ts';
import {
  CorednsKeeper, ExportController, ExportIndex, ImportController, McsMetrics, MCS_GROUP, MCS_VERSION, apiCode, resolveClusterId, type ClusterProperty,
} from '../mcs-api/index.ts';
import { optionRecord, optionsHelp, parseArgs } from './args.ts';
import { brokerClientFromDir, brokerOption } from './broker-client.ts';
import type { Command } from './command.ts';

const schema = {
  cluster: optionalStr('this cluster\'s id, when the ClusterProperty cluster.clusterset.k8s.io does not name it'),
  broker: brokerOption(),
  brokerTlsDir: str('folder with this cluster\'s broker client certificate: tls.crt, tls.key, ca.crt'),
  kubeconfig: optionalStr('kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)'),
  context: optionalStr('kubeconfig context (default: its current context)'),
  gatewayNamespace: str('namespace of the Gateway resources that tell cluster health (default isthmus-system)', 'isthmus-system'),
  dnsService: str('namespace/name of the isthmus dns Service CoreDNS forwards clusterset.local to (default isthmus-system/isthmus-dns)', 'isthmus-system/isthmus-dns'),
  dnsAddress: optionalStr('forward clusterset.local to this ip[:port] instead of the --dns-service\'s ClusterIP'),
  metrics: optionalStr('serve Prometheus metrics, /healthz and /readyz on host:port (default off)'),
  coalesceMs: int('wait this long after an EndpointSlice change before publishing, to batch a rollout (default 250)', 250, 0, 60_000),
  workers: int('Services reconciled in parallel, on each side (export, import) (default 16)', 16, 1, 256),
};

function usage(): string {
  return optionsHelp('isthmus mcs [options]   the Multi-Cluster Services controller (ServiceExport → broker → ServiceImport, CoreDNS stanza)', schema);
}

/** The cluster's ClusterProperties (none when the CRD is not installed). */
async function clusterProperties(kube: KubeRest): Promise<Map<string, string>> {
  try {
    const list = await kube.json<{ items?: ClusterProperty[] }>('GET', '/apis/about.k8s.io/v1alpha1/clusterproperties');
    return new Map((list.items ?? []).map((p) => [p.metadata?.name ?? '', p.spec?.value ?? '']));
  } catch (err) {
    if (apiCode(err) === 404) return new Map();
    throw new IsthmusError(ErrorCodes.UNAVAILABLE, `cannot read ClusterProperties: ${messageOf(err)}`, { cause: err });
  }
}

/** FAILED_PRECONDITION naming the file to apply when the MCS CRDs are missing. */
async function requireCrds(kube: KubeRest): Promise<void> {
  for (const plural of ['serviceexports', 'serviceimports']) {
    try {
      await kube.json('GET', `/apis/${MCS_GROUP}/${MCS_VERSION}/${plural}?limit=1`);
    } catch (err) {
      if (apiCode(err) === 404) {
        throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the ${plural}.${MCS_GROUP} CRD is not installed: kubectl apply -f deploy/crds/${plural}.${MCS_GROUP}.json`);
      }
      throw new IsthmusError(ErrorCodes.UNAVAILABLE, `cannot reach the Kubernetes API: ${messageOf(err)}`, { cause: err });
    }
  }
}

/** The broker cache as a lifecycle service. */
function cacheService(cache: BrokerCache): Service {
  return { name: 'broker-cache', start: async () => cache.start(), stop: () => cache.stop() };
}

export const mcsCommand: Command = {
  name: 'mcs',
  async run(argv) {
    const args = parseArgs(argv, new Set(['help']));
    if (args.options.has('help')) {
      process.stdout.write(usage());
      return 0;
    }
    const cfg = validateConfig(schema, optionRecord(args), 'mcs options');
    const dnsRef = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(cfg.dnsService);
    if (dnsRef === null) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `--dns-service ${JSON.stringify(cfg.dnsService)} is not namespace/name`);
    const kube = new KubeRest(loadKubeTarget({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) }));
    await requireCrds(kube);
    const clusterId = resolveClusterId(await clusterProperties(kube), cfg.cluster);
    const logger = createLogger({ component: 'mcs', cluster: clusterId });
    const broker = brokerClientFromDir(cfg.broker, cfg.brokerTlsDir, logger);
    const cache = new BrokerCache(broker, { kinds: ['EXPORT'], logger });
    const exports = new ExportIndex();
    exports.follow(cache);
    const target = async (): Promise<string | undefined> => {
      if (cfg.dnsAddress !== undefined) return cfg.dnsAddress;
      try {
        const svc = await kube.json<V1Service>('GET', `/api/v1/namespaces/${dnsRef[1] ?? ''}/services/${dnsRef[2] ?? ''}`);
        const ip = svc.spec?.clusterIP;
        return ip === undefined || ip === 'None' ? undefined : ip.includes(':') ? `[${ip}]:53` : ip;
      } catch (err) {
        if (apiCode(err) === 404) return undefined;
        throw err;
      }
    };
    const metrics = new McsMetrics();
    let ready = false;
    void cache.synced.then(() => (ready = true));
    const services: Service[] = [
      cacheService(cache),
      new ExportController({ kube, clusterId, broker, exports, logger, coalesceMs: cfg.coalesceMs, workers: cfg.workers, metrics }),
      new ImportController({ kube, clusterId, exports, logger, gatewayNamespace: cfg.gatewayNamespace, exportsSynced: cache.synced, workers: cfg.workers, metrics }),
      new CorednsKeeper({ kube, target, logger }),
    ];
    // metrics first: /healthz answers while the controllers start; /readyz once the broker list is in
    if (cfg.metrics !== undefined) services.unshift(new MetricsServer(metrics.registry, cfg.metrics, async () => ready));
    try {
      await new Lifecycle(services, logger).runUntilSignal();
    } finally {
      broker.close();
    }
    return 0;
  },
};
