import { isIP } from 'node:net';
import { ErrorCodes, IsthmusError, bool, certificateInfo, custom, int, list, oneOf, optionalStr, str, validateConfig } from '../core/index.ts';
import { callJoinApi, type MintTokenResponse } from '../core/broker-api/join.ts';
import { createClustersetCA, issueFor, loadClustersetCA, type ClustersetCA } from '../certs/index.ts';
import { optionRecord, optionsHelp, parseArgs, usageError } from './args.ts';
import { writeBrokerInfo, type BrokerInfo } from './broker-info.ts';
import { Kube, manifest, opaqueSecret, pick, secretText, waitFor, type Obj } from './kube-apply.ts';

/**
 * `isthmus broker deploy`: etcd (a StatefulSet of 1 or 3 members) and the broker (a
 * Deployment of ≥ 2 replicas behind a Service) from deploy/broker/, the clusterset CA
 * (created, kept from an earlier run, or taken with --ca) and the broker's server
 * certificate as Secrets, then broker-info.json (0600) with a fresh join token.
 * `isthmus broker token`: another broker-info.json with a new token (one per cluster).
 * Both are idempotent: a re-run keeps the CA and a still-fitting server certificate, and
 * re-applies the manifests (which is how the broker is upgraded).
 */
const NS = 'isthmus-system';
const CA_SECRET = 'isthmus-clusterset-ca';
const TLS_SECRET = 'isthmus-broker-tls';
const INFO_CONFIGMAP = 'isthmus-broker-info';

/** "24h", "30m", "90s" or plain seconds → seconds. */
export function parseDuration(raw: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(raw.trim());
  if (m === null) throw new Error(`${JSON.stringify(raw)} is not a duration such as 24h, 30m or 3600`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

const common = {
  kubeconfig: optionalStr('kubeconfig (default $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('context of the cluster that hosts the broker (default: the current one)'),
  out: str('where to write broker-info.json, mode 0600 (default ./broker-info.json)', 'broker-info.json'),
  tokenTtl: custom('how long the join token is good: 1m..7d (default 24h)', (raw) => parseDuration(raw === undefined || raw === '' ? '24h' : String(raw))),
  clusterId: optionalStr('bind the token to this cluster id (default: the first cluster that joins with it)'),
  timeout: int('seconds to wait for the broker (default 180)', 180, 10, 3600),
};

const deploySchema = {
  ...common,
  etcdMembers: oneOf('etcd members, 1 or 3 (default 1)', ['1', '3'] as const, '1'),
  etcdStorage: oneOf('etcd data: a PersistentVolumeClaim (needs a default StorageClass) or an emptyDir, lost with the pod (default pvc)', ['pvc', 'emptyDir'] as const, 'pvc'),
  replicas: int('broker replicas (default 2)', 2, 2, 16),
  serviceType: oneOf('how other clusters reach the broker (default LoadBalancer)', ['LoadBalancer', 'NodePort'] as const, 'LoadBalancer'),
  address: list('host names or IPs clients dial (default: the LoadBalancer\'s, or the ExternalIPs of the broker nodes)', str('address')),
  nodeSelector: optionalStr('label=value the broker nodes carry (default none)'),
  ca: optionalStr('folder of an existing clusterset CA to take (ca.crt, ca.key) (default: keep the one deployed, else create one)'),
  cableDriver: oneOf('the clusterset\'s default cable driver (default wireguard)', ['wireguard', 'ipsec', 'vxlan'] as const, 'wireguard'),
  globalAddressing: bool('give each cluster a global CIDR, allowing overlapping CIDRs (default false)', false),
  image: str('the Isthmus image (default isthmus:0.1.0)', 'isthmus:0.1.0'),
};

function load(argv: readonly string[], flags: string[]): ReturnType<typeof parseArgs> {
  const args = parseArgs(argv, new Set(['help', ...flags]));
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, 'isthmus broker deploy|token --context C [options]');
  return args;
}

export async function brokerDeploy(argv: readonly string[]): Promise<number> {
  const args = load(argv, ['global-addressing']);
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp('isthmus broker deploy --context C [options]: etcd, the broker and the clusterset CA in cluster C; writes broker-info.json', deploySchema));
    return 0;
  }
  const cfg = validateConfig(deploySchema, optionRecord(args), 'broker deploy options');
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  const kube = Kube.load(cfg.kubeconfig, cfg.context);
  const version = await kube.version();
  say(`cluster ${kube.context} (${kube.server}, Kubernetes ${version.gitVersion})`);
  const [selKey, selValue] = (cfg.nodeSelector ?? '').split('=');
  if (cfg.nodeSelector !== undefined && (selKey === undefined || selKey === '' || selValue === undefined)) throw usageError(`--node-selector ${cfg.nodeSelector} is not label=value`, 'isthmus broker deploy --node-selector KEY=VALUE');
  if (cfg.etcdStorage === 'pvc') {
    const classes = await kube.list('storage.k8s.io/v1', 'StorageClass');
    if (!classes.some((c) => c.metadata?.annotations?.['storageclass.kubernetes.io/is-default-class'] === 'true')) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${kube.context} has no default StorageClass, so etcd's volume would never bind: nothing was changed; create one, or pass --etcd-storage emptyDir (etcd's data is then lost with its pod)`);
    }
  }
  const ca = await clustersetCA(kube, cfg.ca, say);

  for (const o of await manifest('namespace.yaml')) await kube.apply(o);
  const brokerObjs = await manifest('broker/broker.yaml');
  const service = pick(brokerObjs, 'Service', 'isthmus-broker');
  service.spec = { ...service.spec, type: cfg.serviceType };
  await kube.apply(service);
  const addresses = await brokerAddresses(kube, cfg, selKey, selValue, say);
  await kube.apply(secret(CA_SECRET, { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem, 'ca-bundle.crt': ca.bundlePem }));
  // members in this cluster dial the Service's cluster IP (join): the certificate names it too
  await serverCertificate(kube, ca, [...addresses.hosts, ...addresses.clusterIps], say);

  const etcdObjs = await manifest('broker/etcd.yaml');
  for (const o of etcdObjs.filter((x) => x.kind !== 'StatefulSet')) await kube.apply(o);
  await kube.apply(etcdStatefulSet(pick(etcdObjs, 'StatefulSet', 'isthmus-etcd'), Number(cfg.etcdMembers), cfg.etcdStorage, cfg.image));
  const deployment = pick(brokerObjs, 'Deployment', 'isthmus-broker');
  await kube.apply(brokerDeployment(deployment, cfg.replicas, cfg.image, cfg.globalAddressing, cfg.nodeSelector === undefined ? undefined : { [selKey as string]: selValue as string }));
  const info = { brokers: addresses.grpc, joinAddresses: addresses.join, cableDriver: cfg.cableDriver, globalAddressing: cfg.globalAddressing };
  await kube.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: INFO_CONFIGMAP, namespace: NS, labels: { 'app.kubernetes.io/part-of': 'isthmus' } }, data: { 'info.json': JSON.stringify(info) } });
  say(`etcd (${cfg.etcdMembers} member${cfg.etcdMembers === '1' ? '' : 's'}, ${cfg.etcdStorage}) and the broker (${cfg.replicas} replicas) applied; waiting until they are ready ...`);
  if (cfg.etcdStorage === 'emptyDir' && cfg.etcdMembers === '3') {
    // a replaced member rejoins (broker etcd-bootstrap), but only while the other two keep a quorum
    say('! with --etcd-storage emptyDir a member whose pod is replaced comes back empty and rejoins from the other two; losing two at once loses the broker\'s data; use --etcd-storage pvc to keep it across pod replacements');
  }
  const timeoutMs = cfg.timeout * 1000;
  await waitFor('etcd ready', timeoutMs, async () => {
    const s = await kube.apps.readNamespacedStatefulSet({ name: 'isthmus-etcd', namespace: NS });
    return (s.status?.readyReplicas ?? 0) >= Number(cfg.etcdMembers) ? true : undefined;
  });
  await waitFor('the broker Deployment available', timeoutMs, async () => {
    const d = await kube.apps.readNamespacedDeployment({ name: 'isthmus-broker', namespace: NS });
    return (d.status?.readyReplicas ?? 0) >= cfg.replicas && (d.status?.updatedReplicas ?? 0) >= cfg.replicas ? true : undefined;
  }, 1000, say, async () => {
    const d = await kube.apps.readNamespacedDeployment({ name: 'isthmus-broker', namespace: NS });
    return `  broker replicas ready: ${d.status?.readyReplicas ?? 0}/${cfg.replicas}`;
  });
  await mintAndWrite(ca, info, cfg, timeoutMs, say);
  return 0;
}

export async function brokerToken(argv: readonly string[]): Promise<number> {
  const args = load(argv, []);
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp('isthmus broker token --context C [options]: a new broker-info.json with a new join token (one per joining cluster)', common));
    return 0;
  }
  const cfg = validateConfig(common, optionRecord(args), 'broker token options');
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  const kube = Kube.load(cfg.kubeconfig, cfg.context);
  const cm = await kube.read('v1', 'ConfigMap', INFO_CONFIGMAP, NS);
  const caSecret = await kube.read('v1', 'Secret', CA_SECRET, NS);
  if (cm === undefined || caSecret === undefined) {
    throw new IsthmusError(ErrorCodes.NOT_FOUND, `no broker is deployed in context ${kube.context} (no ${NS}/${INFO_CONFIGMAP}): run \`isthmus broker deploy --context ${kube.context}\` first, or pass the broker cluster's --context`);
  }
  const info = JSON.parse(cm.data?.['info.json'] ?? '{}') as Pick<BrokerInfo, 'brokers' | 'joinAddresses'> & BrokerInfo['clusterset'];
  await mintAndWrite(caFromSecret(caSecret), info, cfg, cfg.timeout * 1000, say);
  return 0;
}

async function mintAndWrite(ca: ClustersetCA, info: Pick<BrokerInfo, 'brokers' | 'joinAddresses'> & BrokerInfo['clusterset'], cfg: { out: string; tokenTtl: number; clusterId: string | undefined }, timeoutMs: number, say: (s: string) => void): Promise<void> {
  // a short-lived admin certificate, made here from the CA this user can read in the broker cluster
  const admin = issueFor(ca, { role: 'admin' }, { validDays: 1 / 24 });
  const minted = await waitFor(`a join token from the broker at ${info.joinAddresses.join(' or ')}`, timeoutMs, () => callJoinApi<MintTokenResponse>(
    { address: info.joinAddresses, caPem: ca.bundlePem, client: admin }, '/v1/tokens', { ttlSeconds: cfg.tokenTtl, ...(cfg.clusterId === undefined ? {} : { clusterId: cfg.clusterId }) },
  ));
  const out: BrokerInfo = {
    apiVersion: 'isthmus.dev/v1alpha1', kind: 'BrokerInfo', brokers: info.brokers, joinAddresses: info.joinAddresses, caPem: ca.bundlePem,
    clusterset: { cableDriver: info.cableDriver, globalAddressing: info.globalAddressing }, token: minted.token, tokenExpiresAt: minted.expiresAt,
  };
  await writeBrokerInfo(cfg.out, out);
  say(`broker at ${info.brokers.join(', ')} (join API ${info.joinAddresses.join(', ')})`);
  say(`wrote ${cfg.out} (mode 0600): its join token joins one cluster${cfg.clusterId === undefined ? '' : ` (${cfg.clusterId})`} until ${minted.expiresAt}`);
  say(`next: isthmus join ${cfg.out} --context <cluster> --cluster-id <id>; for each further cluster: isthmus broker token --context <this cluster> --out <file>`);
}

async function clustersetCA(kube: Kube, dir: string | undefined, say: (s: string) => void): Promise<ClustersetCA> {
  const existing = await kube.read('v1', 'Secret', CA_SECRET, NS);
  if (dir !== undefined) {
    const taken = await loadClustersetCA(dir);
    if (existing !== undefined && caFromSecret(existing).certPem.trim() !== taken.certPem.trim()) {
      throw new IsthmusError(ErrorCodes.ALREADY_EXISTS, `the broker in ${kube.context} already has another clusterset CA (${NS}/${CA_SECRET}): nothing was changed; replacing it cuts every member off — rotate it with \`isthmus certs ca rotate\` instead, or drop --ca`);
    }
    say(`clusterset CA: taken from ${dir}`);
    return taken;
  }
  if (existing !== undefined) {
    say(`clusterset CA: kept (${NS}/${CA_SECRET})`);
    return caFromSecret(existing);
  }
  say('clusterset CA: created');
  return createClustersetCA();
}

function caFromSecret(s: Obj): ClustersetCA {
  const d = (k: string): string => secretText(s, k);
  return { certPem: d('ca.crt'), keyPem: d('ca.key'), bundlePem: d('ca-bundle.crt') || d('ca.crt') };
}

const secret = (name: string, files: Record<string, string>): Obj => opaqueSecret(name, NS, files);

/** The broker's server certificate: kept while it is from this CA, names every address and has a month left. */
async function serverCertificate(kube: Kube, ca: ClustersetCA, hosts: readonly string[], say: (s: string) => void): Promise<void> {
  const sans = [...hosts, 'isthmus-broker', `isthmus-broker.${NS}`, `isthmus-broker.${NS}.svc`, `isthmus-broker.${NS}.svc.cluster.local`];
  const have = await kube.read('v1', 'Secret', TLS_SECRET, NS);
  const cert = secretText(have, 'tls.crt');
  if (cert !== '' && secretText(have, 'ca.crt') === ca.bundlePem) {
    const info = certificateInfo(cert);
    const named = new Set([...info.dnsNames, ...info.ipAddresses]);
    if (sans.every((s) => named.has(s)) && info.notAfter.getTime() - Date.now() > 30 * 86_400_000) {
      say('broker certificate: kept');
      return;
    }
  }
  const issued = issueFor(ca, { role: 'broker', sans });
  await kube.apply(secret(TLS_SECRET, { 'tls.crt': issued.certPem, 'tls.key': issued.keyPem, 'ca.crt': ca.bundlePem }));
  say(`broker certificate: issued for ${hosts.join(', ')} and the Service's names`);
}

/** Where clients dial the broker: the Service's ports on the given hosts, its LoadBalancer, or its nodes' ExternalIPs. */
async function brokerAddresses(kube: Kube, cfg: { address: readonly string[]; serviceType: string; timeout: number; nodeSelector: string | undefined }, selKey: string | undefined, selValue: string | undefined, say: (s: string) => void): Promise<{ hosts: string[]; grpc: string[]; join: string[]; clusterIps: string[] }> {
  const svc = await waitFor('the broker Service', cfg.timeout * 1000, () => kube.core.readNamespacedService({ name: 'isthmus-broker', namespace: NS }));
  const nodePort = cfg.serviceType === 'NodePort';
  const port = (name: string): number => {
    const p = svc.spec?.ports?.find((x) => x.name === name);
    return (nodePort ? p?.nodePort : p?.port) ?? 0;
  };
  let hosts = [...cfg.address];
  if (hosts.length === 0 && !nodePort) {
    say('waiting for the LoadBalancer address of Service isthmus-broker (give --address to skip) ...');
    const s = await waitFor('a LoadBalancer address for Service isthmus-broker (no load-balancer controller? use --service-type NodePort, or --address)', cfg.timeout * 1000, async () => {
      const x = await kube.core.readNamespacedService({ name: 'isthmus-broker', namespace: NS });
      const ingress = x.status?.loadBalancer?.ingress ?? [];
      return ingress.length > 0 ? ingress : undefined;
    });
    hosts = s.map((i) => i.ip ?? i.hostname ?? '').filter((h) => h !== '');
  }
  if (hosts.length === 0) {
    const nodes = (await kube.core.listNode(cfg.nodeSelector === undefined ? {} : { labelSelector: `${selKey ?? ''}=${selValue ?? ''}` })).items;
    hosts = nodes.flatMap((n) => (n.status?.addresses ?? []).filter((a) => a.type === 'ExternalIP').map((a) => a.address));
    if (hosts.length === 0) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `no node${cfg.nodeSelector === undefined ? '' : ` with ${cfg.nodeSelector}`} has an ExternalIP for other clusters to reach the broker at: give the address they can reach with --address`);
    }
  }
  const fmt = (h: string, p: number): string => (isIP(h) === 6 ? `[${h}]:${p}` : `${h}:${p}`);
  const clusterIps = (svc.spec?.clusterIPs ?? [svc.spec?.clusterIP ?? '']).filter((ip) => isIP(ip) !== 0 && !hosts.includes(ip));
  return { hosts, grpc: hosts.map((h) => fmt(h, port('grpc'))), join: hosts.map((h) => fmt(h, port('join'))), clusterIps };
}

/** etcd.yaml's StatefulSet for `members` members, its data on a PVC or an emptyDir, its bootstrap init container on `image`. Pure. */
export function etcdStatefulSet(base: Obj, members: number, storage: 'pvc' | 'emptyDir', image?: string): Obj {
  type C = { image: string; command?: string[]; args?: string[] };
  const s = structuredClone(base) as Obj & { spec: { replicas: number; volumeClaimTemplates?: unknown; template: { spec: { initContainers?: C[]; containers: C[]; volumes?: object[] } } } };
  s.spec.replicas = members;
  const peers = Array.from({ length: members }, (_, i) => `isthmus-etcd-${i}=http://isthmus-etcd-${i}.isthmus-etcd:2380`).join(',');
  const withPeers = (argv: string[] | undefined): string[] | undefined => argv?.map((a) => (a.startsWith('--initial-cluster=') ? `--initial-cluster=${peers}` : a));
  for (const c of [...(s.spec.template.spec.initContainers ?? []), ...s.spec.template.spec.containers]) {
    const command = withPeers(c.command);
    const args = withPeers(c.args);
    if (command !== undefined) c.command = command;
    if (args !== undefined) c.args = args;
  }
  if (image !== undefined) for (const c of s.spec.template.spec.initContainers ?? []) c.image = image;
  if (storage === 'emptyDir') {
    delete s.spec.volumeClaimTemplates;
    s.spec.template.spec.volumes = [...(s.spec.template.spec.volumes ?? []), { name: 'data', emptyDir: {} }];
  }
  return s;
}

/** broker.yaml's Deployment with the replicas, image, global addressing and node selector asked for. Pure. */
export function brokerDeployment(base: Obj, replicas: number, image: string, globalAddressing: boolean, nodeSelector: Record<string, string> | undefined): Obj {
  const d = structuredClone(base) as Obj & { spec: { replicas: number; template: { spec: { nodeSelector?: Record<string, string>; containers: { image: string; args: string[] }[] } } } };
  d.spec.replicas = replicas;
  if (nodeSelector !== undefined) d.spec.template.spec.nodeSelector = nodeSelector;
  for (const c of d.spec.template.spec.containers) {
    c.image = image;
    if (globalAddressing && !c.args.includes('--global-addressing')) c.args.push('--global-addressing');
  }
  return d;
}
