import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import {
  ErrorCodes, IsthmusError, messageOf, Lifecycle, MetricsServer, SystemRunner, bool, createLogger, custom, int, list, oneOf, optionalStr, parseCidr, parseIp, str, validateConfig,
} from '../core/index.ts';
import { loadKubeConfig } from '../core/k8s.ts';
import { DRIVER_NAMES, driversForCleanup, setupDriver } from '../gateway/drivers.ts';
import { GatewayEngine } from '../gateway/engine.ts';
import { pickHealthAddress, type LocalAddress } from '../gateway/health-address.ts';
import { GatewayMetrics } from '../gateway/metrics.ts';
import { DEFAULT_NAT_PROBE_PORT } from '../gateway/nat-probe.ts';
import { optionRecord, optionsHelp, parseArgs } from './args.ts';
import { brokerClientFromDir, brokerOption } from './broker-client.ts';
import { parseBrokerAddresses } from '../core/broker-api/index.ts';
import type { Command } from './command.ts';

const ip = (what: string, def?: string, auto = false) => custom(what, (raw) => {
  if ((raw === undefined || raw === '') && def !== undefined) return def;
  if (auto && raw === 'auto') return raw;
  if (typeof raw !== 'string') throw new Error('is required');
  parseIp(raw);
  return raw;
});
const cidr = str('a CIDR');
const checkedCidr = custom('a CIDR', (raw) => {
  const s = cidr.parse(raw);
  parseCidr(s);
  return s;
});

const schema = {
  cluster: str('this cluster\'s id (an RFC-1123 label)', undefined, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'is not an RFC-1123 label'),
  hostname: str('this gateway\'s name (default: $NODE_NAME or the host name)', process.env['NODE_NAME'] ?? process.env['HOSTNAME'] ?? ''),
  broker: brokerOption(),
  brokerTlsDir: str('folder with this cluster\'s broker client certificate: tls.crt, tls.key, ca.crt'),
  driver: oneOf('cable driver (default wireguard)', DRIVER_NAMES, 'wireguard'),
  privateIp: ip('the address cables use on this node; "auto": this node\'s source address towards the broker', undefined, true),
  publicIp: ip('public address (default: as the broker sees it)', ''),
  port: int('cable UDP port (default 51820 wireguard, 500 ipsec, 4789 vxlan)', 0, 0, 65535),
  podCidrs: list('this cluster\'s pod CIDRs', checkedCidr),
  serviceCidrs: list('this cluster\'s service CIDRs', checkedCidr),
  healthCheckIp: ip('address remote gateways probe through the cable, inside the pod CIDRs; "auto": a CNI interface\'s address inside them, else the first address of this node\'s pod CIDR put on lo (default none)', '', true),
  healthPort: int('health probe UDP port (default 4801)', 4801, 1, 65535),
  healthInterval: int('ms between health probes; 3 unanswered in a row mark a cable dead (default 500)', 500, 100, 60_000),
  forceNat: bool('force NAT traversal (UDP encapsulation) (default false)', false),
  natProbePort: int(`UDP port of the NAT discovery probe on the private address, published to the peers; 0 = off (default ${DEFAULT_NAT_PROBE_PORT})`, DEFAULT_NAT_PROBE_PORT, 0, 65535),
  metrics: optionalStr('host:port to serve Prometheus metrics at /metrics and probes at /healthz, /readyz (default off)'),
  namespace: str('namespace of the Lease and the Gateway resource (default isthmus-system)', 'isthmus-system'),
  leaseName: str('name of the active/passive Lease (default isthmus-gateway)', 'isthmus-gateway'),
  leaseMs: int('lease duration in ms (default 2000)', 2000, 500, 60_000),
  renewDeadlineMs: int('renew deadline in ms (default 1500)', 1500, 200, 60_000),
  maxLeaseMs: int('the longest a slow apiserver stretches the lease (and the renew deadline with it) to, in ms: the holder states 4 × its slowest recent call as the lease, so it keeps the lease instead of flapping; a failover then takes up to that long (default 15000)', 15_000, 500, 600_000),
  retryMs: int('lease retry period in ms (default 250)', 250, 50, 10_000),
  resyncMs: int('ms between full reconciles, which repair what the OS lost (default 5000)', 5000, 500, 600_000),
  endpointTtl: int('broker lease TTL of the endpoint in s (default 10)', 10, 2, 300),
  privateSockets: bool('wireguard: private control-socket folder, for several gateways on one filesystem (sandbox); needs CAP_SYS_ADMIN (default false)', false),
  stateDir: str('folder for driver state and the WireGuard key (default /var/lib/isthmus/gateway)', '/var/lib/isthmus/gateway'),
  tlsDir: optionalStr('ipsec: folder with the gateway certificate (tls.crt, tls.key, ca.crt)'),
  tlsName: optionalStr('ipsec: the certificate\'s file names in --tls-dir are NAME.crt and NAME.key (default tls; the Deployment gives the node name: `isthmus join` stores one per gateway node)'),
  pskFile: optionalStr('ipsec: file holding a PSK instead of certificates (needs --insecure-shared-psk)'),
  insecureSharedPsk: bool('ipsec: accept PSK mode, where every cluster shares one secret and any member can impersonate any other (default false)', false),
  kubeconfig: optionalStr('kubeconfig (default: in-cluster, $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('kubeconfig context'),
};

const DEFAULT_PORT = { wireguard: 51820, ipsec: 500, vxlan: 4789 } as const;

export const gatewayCommand: Command = {
  name: 'gateway',
  async run(argv) {
    const args = parseArgs(argv, new Set(['force-nat', 'private-sockets', 'insecure-shared-psk', 'cleanup', 'help']));
    if (args.options.has('help')) {
      process.stdout.write(optionsHelp('isthmus gateway [options]', schema));
      return 0;
    }
    if (args.options.has('cleanup')) return cleanup(args);
    const cfg = validateConfig(schema, optionRecord(args), 'gateway options');
    const logger = createLogger({ component: 'gateway', cluster: cfg.cluster });
    const runner = new SystemRunner();
    const privateIp = cfg.privateIp === 'auto' ? await sourceAddressTowards(runner, cfg.broker) : cfg.privateIp;
    if (cfg.privateIp === 'auto') logger.info({ privateIp, broker: cfg.broker }, 'private address: the source address of the route to the broker');
    const setup = setupDriver({
      name: cfg.driver, runner, logger, stateDir: cfg.stateDir, privateSockets: cfg.privateSockets,
      ...(cfg.tlsDir === undefined ? {} : { tlsDir: cfg.tlsDir }),
      ...(cfg.tlsName === undefined ? {} : { tlsName: cfg.tlsName }),
      ...(cfg.pskFile === undefined ? {} : { pskFile: cfg.pskFile, insecureSharedPsk: cfg.insecureSharedPsk }),
    });
    const broker = brokerClientFromDir(cfg.broker, cfg.brokerTlsDir, logger);
    const kubeConfig = loadKubeConfig({ ...(cfg.kubeconfig === undefined ? {} : { kubeconfig: cfg.kubeconfig }), ...(cfg.context === undefined ? {} : { context: cfg.context }) });
    const healthCheckIp = cfg.healthCheckIp === 'auto'
      ? await autoHealthAddress(runner, kubeConfig, cfg.hostname, cfg.podCidrs, cfg.stateDir, logger)
      : cfg.healthCheckIp;
    const metrics = new GatewayMetrics();
    const engine = new GatewayEngine({
      clusterId: cfg.cluster, hostname: cfg.hostname, privateIp, publicIp: cfg.publicIp,
      port: cfg.port === 0 ? DEFAULT_PORT[cfg.driver] : cfg.port,
      podCidrs: cfg.podCidrs, serviceCidrs: cfg.serviceCidrs, healthCheckIp, healthPort: cfg.healthPort,
      healthIntervalMs: cfg.healthInterval, forceNatTraversal: cfg.forceNat, natProbePort: cfg.natProbePort, namespace: cfg.namespace,
      leaseName: cfg.leaseName, leaseMs: cfg.leaseMs, maxLeaseMs: cfg.maxLeaseMs, renewDeadlineMs: cfg.renewDeadlineMs, retryMs: cfg.retryMs, endpointTtlS: cfg.endpointTtl,
      resyncMs: cfg.resyncMs,
    }, { kubeConfig, broker, driver: setup.driver, secrets: setup.secrets, backend: setup.backend, logger, metrics });
    // metrics first: /healthz answers while the engine starts, /readyz says when it is ready
    const services = cfg.metrics === undefined ? [engine] : [new MetricsServer(metrics.registry, cfg.metrics, async () => engine.ready), engine];
    try {
      await new Lifecycle(services, logger).runUntilSignal();
    } finally {
      broker.close();
    }
    return 0;
  },
};

const cleanupSchema = { stateDir: schema.stateDir, privateSockets: schema.privateSockets };

/**
 * `isthmus gateway --cleanup [--state-dir DIR] [--private-sockets]`: removes this node's
 * WireGuard or VXLAN cable device (and wireguard-go's socket), stops charon and unloads its
 * cables (IPsec), removes the health check address it put on lo and the state folder, then exits;
 * what `isthmus uninstall` runs on every node. Other options are ignored.
 */
async function cleanup(args: ReturnType<typeof parseArgs>): Promise<number> {
  const rec = optionRecord(args);
  const cfg = validateConfig(cleanupSchema, { stateDir: rec['stateDir'], privateSockets: rec['privateSockets'] }, 'gateway --cleanup options');
  const logger = createLogger({ component: 'gateway' });
  const runner = new SystemRunner();
  for (const driver of driversForCleanup({ runner, logger, stateDir: cfg.stateDir, privateSockets: cfg.privateSockets })) {
    try {
      await driver.cleanup();
    } catch (err) {
      logger.warn({ driver: driver.name, err: messageOf(err) }, 'cleanup incomplete');
    }
  }
  const onLo = (await readFile(join(cfg.stateDir, HEALTH_ADDRESS_FILE), 'utf8').catch(() => '')).trim();
  if (onLo !== '') {
    parseIp(onLo);
    await runner.run('ip', ['addr', 'del', `${onLo}/32`, 'dev', 'lo'], { allowFailure: true });
  }
  await rm(cfg.stateDir, { recursive: true, force: true });
  process.stdout.write(`cable devices and ${cfg.stateDir} removed\n`);
  return 0;
}

/**
 * The source address this node uses towards the broker (`ip route get`), for `--private-ip
 * auto`: towards its first address when it has several (the broker's nodes share a network).
 */
async function sourceAddressTowards(runner: SystemRunner, broker: string): Promise<string> {
  const host = parseBrokerAddresses(broker, '--broker')[0]?.host ?? '';
  const address = isIP(host) !== 0 ? host : (await lookup(host).catch((err: unknown) => {
    throw new IsthmusError(ErrorCodes.UNAVAILABLE, `--private-ip auto: cannot resolve the broker's host ${host} (${messageOf(err)}); give --private-ip explicitly`);
  })).address;
  const out = await runner.run('ip', ['-j', 'route', 'get', address]);
  const src = (JSON.parse(out.stdout) as { prefsrc?: string }[])[0]?.prefsrc;
  if (src === undefined) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `--private-ip auto: this node has no route with a source address towards the broker ${address}; give --private-ip explicitly`);
  return src;
}

/** The address `--health-check-ip auto` put on lo, kept in the state folder for `--cleanup`. */
const HEALTH_ADDRESS_FILE = 'health-address-on-lo';

/**
 * `--health-check-ip auto` (gateway/health-address.ts chooses): reads this node's addresses
 * and its Node's spec.podCIDR (needs `get` on nodes; without it only interface addresses
 * count), puts the address on lo when the choice says so. '' turns health probes off.
 */
async function autoHealthAddress(runner: SystemRunner, kubeConfig: KubeConfig, node: string, podCidrs: readonly string[], stateDir: string,
  logger: ReturnType<typeof createLogger>): Promise<string> {
  const out = await runner.run('ip', ['-j', 'addr', 'show']);
  const links = JSON.parse(out.stdout) as { ifname?: string; addr_info?: { local?: string }[] }[];
  const local: LocalAddress[] = links.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (l.ifname === undefined || a.local === undefined ? [] : [{ ifname: l.ifname, address: a.local }])));
  const nodePodCidr = await kubeConfig.makeApiClient(CoreV1Api).readNode({ name: node }).then((n) => n.spec?.podCIDR, (err: unknown) => {
    logger.warn({ node, err: messageOf(err) }, 'health check address: cannot read this node\'s pod CIDR; only interface addresses count');
    return undefined;
  });
  const choice = pickHealthAddress(local, podCidrs, nodePodCidr);
  if (choice.address === '') {
    logger.warn({ reason: choice.reason }, 'health check address: none, so no health probes (give --health-check-ip to set one)');
    return '';
  }
  if (choice.onLoopback) {
    await runner.run('ip', ['addr', 'replace', `${choice.address}/32`, 'dev', 'lo']);
    await mkdir(stateDir, { recursive: true });
    await writeFile(join(stateDir, HEALTH_ADDRESS_FILE), `${choice.address}\n`);
  }
  logger.info({ healthCheckIp: choice.address, reason: choice.reason }, 'health check address');
  return choice.address;
}
