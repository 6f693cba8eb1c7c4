import { createPublicKey } from 'node:crypto';
import { AuthorizationV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  ErrorCodes, IsthmusError, bool, certificateInfo, custom, generateKeyPair, int, list, oneOf, optionalStr, parseCidr, parseIp, str, validateConfig,
} from '../core/index.ts';
import { MAX_GATEWAYS_PER_REQUEST, callJoinApi, type GatewayCertificatesResponse, type JoinResponse } from '../core/broker-api/index.ts';
import { verifyWithBundle } from '../certs/index.ts';
import { optionRecord, optionsHelp, parseArgs, usageError } from './args.ts';
import { readBrokerInfo, type BrokerInfo } from './broker-info.ts';
import type { Command } from './command.ts';
import {
  IPSEC_SECRET, JOIN_RBAC, POLICY_WORKLOADS, brokerList, checkClusterId, coveringCidr, gatewayCertsToIssue, gatewayConfigMap, kubeadmSubnets, mcsConfigMap, podBrokerAddress, proxyModeOf, workload, type JoinSettings, type LocalBroker,
} from './join-plan.ts';
import { Kube, clusterBrokerClient, manifest, opaqueSecret, pick, secretText, waitFor, type Obj } from './kube-apply.ts';

/**
 * `isthmus join broker-info.json --context C`: checks first, changes nothing when a check
 * fails (apiserver reachable and recent enough, our rights, kube-proxy's mode, the pod and
 * service CIDRs, gateway nodes, then the token, the cluster id and CIDR overlap at the
 * broker, as a dry run), then applies: CRDs, RBAC, this cluster's broker certificate
 * (its key is made here and stored first, so a join cut short re-uses it and the broker
 * hands the certificate out again), the ClusterProperty, the ConfigMaps, gateway labels,
 * the gateway Deployment, the route agent DaemonSet, the MCS controller with its DNS
 * server (which wires CoreDNS), and the policy controller with its node agents.
 * Idempotent: a cluster that has its certificate skips the token; re-running is how a
 * cluster is upgraded. `--wait` follows the rollout and the
 * cables until every cable is connected.
 */
const NS = 'isthmus-system';
const CLIENT_SECRET = 'isthmus-broker-client';
const GATEWAY_LABEL = 'isthmus.dev/gateway-capable';
const MIN_MINOR = 29;
/** On a node whose gateway label join added (so uninstall takes it off again, and only there). */
export const JOINED_LABEL_ANNOTATION = 'isthmus.dev/gateway-labelled-by';
/** The CRDs join installs (deploy/crds/). */
export const JOIN_CRDS = [
  'gateways.isthmus.dev', 'routeagents.isthmus.dev', 'serviceexports.multicluster.x-k8s.io', 'serviceimports.multicluster.x-k8s.io', 'clusterproperties.about.k8s.io',
  'clustersetnetworkpolicies.isthmus.dev', 'policyagents.isthmus.dev',
] as const;

const schema = {
  kubeconfig: optionalStr('kubeconfig (default $KUBECONFIG, ~/.kube/config)'),
  context: optionalStr('context of the joining cluster (default: the current one)'),
  clusterId: optionalStr('this cluster\'s id, an RFC-1123 label (default: its ClusterProperty cluster.clusterset.k8s.io)'),
  cableDriver: optionalStr('wireguard, ipsec or vxlan (default: the clusterset\'s, from broker-info.json)'),
  gatewayNodes: list('nodes to label as gateway-capable (default: those labelled already)', str('node')),
  labelGateway: bool('label the first node as gateway-capable when none is (default false)', false),
  natTraversal: bool('force NAT traversal on every cable (default false)', false),
  publicIp: custom('the gateways\' public address (default: as the broker sees them)', (raw) => {
    if (raw === undefined || raw === '') return '';
    parseIp(String(raw));
    return String(raw);
  }),
  podCidrs: list('pod CIDRs (default: read from the cluster)', custom('CIDR', (raw) => (parseCidr(String(raw)), String(raw)))),
  serviceCidrs: list('service CIDRs (default: read from the cluster)', custom('CIDR', (raw) => (parseCidr(String(raw)), String(raw)))),
  image: str('the Isthmus image (default isthmus:0.1.0)', 'isthmus:0.1.0'),
  wait: bool('wait until every cable is connected (default false)', false),
  timeout: int('seconds --wait waits (default 300)', 300, 10, 3600),
  dryRun: bool('run the checks and print the plan; change nothing (default false)', false),
};
type Config = ReturnType<typeof validateConfig<typeof schema>>;

const USAGE = 'isthmus join BROKER-INFO.json --context C [--cluster-id ID] [options]';

interface Facts {
  readonly clusterId: string;
  readonly version: string;
  readonly proxyMode: string;
  readonly podCidrs: readonly string[];
  readonly serviceCidrs: readonly string[];
  readonly gatewayNodes: readonly string[];
  readonly toLabel: readonly string[];
  /** The cluster already holds a certificate for this id from this clusterset. */
  readonly credentials: 'have' | 'key' | 'none';
  readonly sandbox: boolean;
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help', 'label-gateway', 'nat-traversal', 'wait', 'dry-run']));
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp(`${USAGE}\n\n  Joins the cluster to the clusterset of BROKER-INFO.json (from \`isthmus broker deploy\` or \`isthmus broker token\`).`, schema));
    return 0;
  }
  const [file, extra] = args.positionals;
  if (file === undefined) throw usageError('give the broker-info.json file', USAGE);
  if (extra !== undefined) throw usageError(`unexpected argument "${extra}"`, USAGE);
  const cfg = validateConfig(schema, optionRecord(args), 'join options');
  const say = (s: string): void => void process.stdout.write(`${s}\n`);
  const info = await readBrokerInfo(file);
  const driver = cfg.cableDriver ?? info.clusterset.cableDriver;
  if (!['wireguard', 'ipsec', 'vxlan'].includes(driver)) throw usageError(`--cable-driver ${driver}: use wireguard, ipsec or vxlan`, USAGE);
  const kube = Kube.load(cfg.kubeconfig, cfg.context);
  const facts = await precheck(kube, cfg, info, say);
  const keyPem = facts.credentials === 'none' ? undefined : await storedKey(kube);
  if (facts.credentials !== 'have') {
    const probe = keyPem ?? generateKeyPair().keyPem;
    const dry = await joinApi(info, facts, probe, true);
    say(`✓ broker: token good, cluster id ${facts.clusterId} free, CIDRs clear of ${dry.members.length === 0 ? 'every member (none yet)' : dry.members.join(', ')}`);
  } else {
    say(`✓ credentials: this cluster holds its certificate for ${facts.clusterId} already (the token is not needed)`);
  }
  const pod = podBrokerAddress(info, await localBroker(kube));
  const external = brokerList(info);
  if (pod.address !== external) say(`✓ broker: runs in this cluster; the MCS and policy controllers dial its Service at ${pod.address}`);
  if (pod.note !== undefined) say(`! ${pod.note}`);
  const settings: JoinSettings = {
    clusterId: facts.clusterId, brokers: info.brokers, ...(pod.address === external ? {} : { podBroker: pod.address }), cableDriver: driver as JoinSettings['cableDriver'], podCidrs: facts.podCidrs, serviceCidrs: facts.serviceCidrs,
    publicIp: cfg.publicIp, natTraversal: cfg.natTraversal, privateSockets: facts.sandbox && driver === 'wireguard', gatewayReplicas: facts.gatewayNodes.length, image: cfg.image,
  };
  if (cfg.dryRun) {
    say('\ndry run: nothing changed. `join` would apply: namespace isthmus-system, the CRDs of deploy/crds, the RBAC of the gateway, route agent, MCS API and policy,');
    say(`the Secret ${CLIENT_SECRET} (${facts.credentials === 'have' ? 'kept' : 'a new certificate through the token'}), the ClusterProperty, the ConfigMaps isthmus-gateway and isthmus-mcs,`);
    if (settings.cableDriver === 'ipsec') say(`the Secret ${IPSEC_SECRET} (an IPsec certificate for each gateway node: ${facts.gatewayNodes.join(', ')}),`);
    say(`labels on ${facts.toLabel.join(', ') || '(no node)'}, the gateway Deployment (${settings.gatewayReplicas} replicas), the route agent DaemonSet, isthmus-mcs, isthmus-dns,`);
    say('the policy controller Deployment and the policy agent DaemonSet.');
    return 0;
  }
  await apply(kube, info, facts, settings, keyPem, say);
  say(`\n${facts.clusterId} joined the clusterset (broker ${info.brokers.join(', ')}).`);
  if (cfg.wait) await waitConnected(kube, facts, cfg.timeout * 1000, say);
  else say(`follow it: kubectl --context ${kube.context} -n ${NS} get gateways,routeagents  (or re-run with --wait)`);
  return 0;
}

/** The broker of this cluster, when one was deployed here (`isthmus broker deploy`). */
async function localBroker(kube: Kube): Promise<LocalBroker | undefined> {
  const [secret, svc] = await Promise.all([kube.read('v1', 'Secret', 'isthmus-broker-tls', NS), kube.read<Obj & { spec?: { clusterIP?: string; clusterIPs?: string[]; ports?: { name?: string; port?: number }[] } }>('v1', 'Service', 'isthmus-broker', NS)]);
  if (secret === undefined || svc === undefined) return undefined;
  return {
    caPem: secretText(secret, 'ca.crt'), certPem: secretText(secret, 'tls.crt'),
    clusterIps: svc.spec?.clusterIPs ?? (svc.spec?.clusterIP === undefined ? [] : [svc.spec.clusterIP]),
    port: svc.spec?.ports?.find((p) => p.name === 'grpc')?.port ?? 0,
  };
}

/** Every check before anything changes. */
async function precheck(kube: Kube, cfg: Config, info: BrokerInfo, say: (s: string) => void): Promise<Facts> {
  const v = await kube.version();
  if (!(v.minor >= MIN_MINOR)) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${kube.context} runs Kubernetes ${v.gitVersion}; Isthmus needs 1.${MIN_MINOR} or later: nothing was changed; upgrade the cluster first`);
  say(`✓ apiserver ${kube.server} (context ${kube.context}) answers: Kubernetes ${v.gitVersion}`);
  await requireRights(kube);
  say('✓ rights: CRDs, RBAC, namespaces, Deployments, DaemonSets, Secrets and node labels');
  const proxyCm = await kube.read('v1', 'ConfigMap', 'kube-proxy', 'kube-system');
  const proxyMode = proxyModeOf(proxyCm?.data?.['config.conf']);
  if (proxyMode === 'kernelspace') throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, 'kube-proxy runs in kernelspace mode (Windows): Isthmus needs Linux nodes with iptables, nftables or ipvs; nothing was changed');
  say(`✓ kube-proxy mode: ${proxyMode === 'unknown' ? 'unknown (no kube-system/kube-proxy ConfigMap; iptables, nftables and ipvs all work)' : proxyMode}`);
  const cidrs = await clusterCidrs(kube, cfg);
  say(`✓ CIDRs: pods ${cidrs.pod.join(',')} (${cidrs.podFrom}), services ${cidrs.service.join(',')} (${cidrs.serviceFrom})`);
  const clusterId = await clusterIdOf(kube, cfg.clusterId);
  const nodes = (await kube.core.listNode().catch((err: unknown) => { throw kube.wrap(err, 'list nodes'); })).items;
  const names = new Set(nodes.map((n) => n.metadata?.name ?? ''));
  for (const n of cfg.gatewayNodes) if (!names.has(n)) throw new IsthmusError(ErrorCodes.NOT_FOUND, `--gateway-nodes: there is no node ${n} in ${kube.context} (nodes: ${[...names].join(', ')}); nothing was changed`);
  const labelled = nodes.filter((n) => n.metadata?.labels?.[GATEWAY_LABEL] === 'true').map((n) => n.metadata?.name ?? '');
  let toLabel = cfg.gatewayNodes.filter((n) => !labelled.includes(n));
  if (labelled.length + toLabel.length === 0) {
    const first = [...names].sort()[0];
    if (!cfg.labelGateway || first === undefined) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `no node of ${kube.context} is labelled ${GATEWAY_LABEL}=true: nothing was changed; name the gateway nodes with --gateway-nodes NODE[,NODE], or pass --label-gateway to label ${first ?? 'one'}`);
    }
    toLabel = [first];
  }
  const gatewayNodes = [...new Set([...labelled, ...toLabel])].sort();
  say(`✓ gateway nodes: ${gatewayNodes.join(', ')}${toLabel.length > 0 ? ` (to label: ${toLabel.join(', ')})` : ''}`);
  const credentials = await credentialsState(kube, clusterId, info);
  const sandbox = nodes.some((n) => n.metadata?.labels?.['isthmus.dev/sandbox-cluster'] !== undefined);
  return { clusterId, version: v.gitVersion, proxyMode, podCidrs: cidrs.pod, serviceCidrs: cidrs.service, gatewayNodes, toLabel, credentials, sandbox };
}

async function requireRights(kube: Kube): Promise<void> {
  const authz = kube.kc.makeApiClient(AuthorizationV1Api);
  const wanted: [string, string, string, string?][] = [
    ['create', 'apiextensions.k8s.io', 'customresourcedefinitions'], ['create', 'rbac.authorization.k8s.io', 'clusterroles'],
    ['create', 'rbac.authorization.k8s.io', 'clusterrolebindings'], ['create', '', 'namespaces'], ['patch', '', 'nodes'],
    ['create', 'apps', 'deployments', NS], ['create', 'apps', 'daemonsets', NS], ['create', '', 'secrets', NS],
  ];
  const missing: string[] = [];
  for (const [verb, group, resource, namespace] of wanted) {
    const r = await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { verb, group, resource, ...(namespace === undefined ? {} : { namespace }) } } } })
      .catch((err: unknown) => { throw kube.wrap(err, 'check this user\'s rights'); });
    if (r.status?.allowed !== true) missing.push(`${verb} ${resource}${group === '' ? '' : `.${group}`}${namespace === undefined ? '' : ` in ${namespace}`}`);
  }
  if (missing.length > 0) {
    throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `the user of context ${kube.context} may not ${missing.join(', ')}: nothing was changed; join as a cluster admin`);
  }
}

async function clusterCidrs(kube: Kube, cfg: Config): Promise<{ pod: string[]; service: string[]; podFrom: string; serviceFrom: string }> {
  const kubeadm = kubeadmSubnets((await kube.read('v1', 'ConfigMap', 'kubeadm-config', 'kube-system'))?.data?.['ClusterConfiguration']);
  let pod = [...cfg.podCidrs];
  let podFrom = '--pod-cidrs';
  if (pod.length === 0 && kubeadm.pod.length > 0) [pod, podFrom] = [kubeadm.pod, 'kubeadm-config'];
  if (pod.length === 0) {
    const nodeCidrs = (await kube.core.listNode()).items.flatMap((n) => n.spec?.podCIDRs ?? (n.spec?.podCIDR === undefined ? [] : [n.spec.podCIDR]));
    if (nodeCidrs.length > 0) [pod, podFrom] = [coveringCidr(nodeCidrs), `covering the nodes' ${nodeCidrs.join(', ')}`];
  }
  let service = [...cfg.serviceCidrs];
  let serviceFrom = '--service-cidrs';
  if (service.length === 0) {
    const objs = await kube.list<Obj & { spec?: { cidrs?: string[] } }>('networking.k8s.io/v1', 'ServiceCIDR');
    const found = objs.flatMap((o) => o.spec?.cidrs ?? []);
    if (found.length > 0) [service, serviceFrom] = [found, 'ServiceCIDR objects'];
    else if (kubeadm.service.length > 0) [service, serviceFrom] = [kubeadm.service, 'kubeadm-config'];
  }
  if (pod.length === 0) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cannot read the pod CIDRs of ${kube.context} (no kubeadm-config, no node podCIDR): nothing was changed; give them with --pod-cidrs`);
  if (service.length === 0) throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cannot read the service CIDRs of ${kube.context} (no ServiceCIDR object, no kubeadm-config): nothing was changed; give them with --service-cidrs`);
  return { pod, service, podFrom, serviceFrom };
}

async function clusterIdOf(kube: Kube, given: string | undefined): Promise<string> {
  const prop = await kube.read<Obj & { spec?: { value?: string } }>('about.k8s.io/v1alpha1', 'ClusterProperty', 'cluster.clusterset.k8s.io').catch(() => undefined);
  const declared = prop?.spec?.value;
  if (given !== undefined && declared !== undefined && declared !== given) {
    throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cluster ${kube.context} calls itself ${declared} (ClusterProperty cluster.clusterset.k8s.io), not ${given}: nothing was changed; join with --cluster-id ${declared}, or change the ClusterProperty first`);
  }
  const id = given ?? declared;
  if (id === undefined) throw usageError(`give this cluster's id with --cluster-id (it has no ClusterProperty cluster.clusterset.k8s.io)`, USAGE);
  return checkClusterId(id);
}

/** 'have': a certificate for this id from this clusterset with a week left; 'key': a key stored by a join cut short. */
async function credentialsState(kube: Kube, clusterId: string, info: BrokerInfo): Promise<Facts['credentials']> {
  const s = await kube.read('v1', 'Secret', CLIENT_SECRET, NS);
  const file = (k: string): string => secretText(s, k);
  if (s === undefined || file('tls.key') === '') return 'none';
  if (file('tls.crt') === '') return 'key';
  const cert = certificateInfo(file('tls.crt'));
  if (cert.commonName !== clusterId) {
    throw new IsthmusError(ErrorCodes.ALREADY_EXISTS, `cluster ${kube.context} has joined as ${cert.commonName ?? '?'} already (Secret ${NS}/${CLIENT_SECRET}): nothing was changed; a cluster joins once — run \`isthmus uninstall --context ${kube.context}\` first to join as ${clusterId}`);
  }
  try {
    verifyWithBundle(file('tls.crt'), info.caPem);
  } catch {
    return 'key';
  }
  return cert.notAfter.getTime() - Date.now() > 7 * 86_400_000 ? 'have' : 'key';
}

async function storedKey(kube: Kube): Promise<string> {
  return secretText(await kube.read('v1', 'Secret', CLIENT_SECRET, NS), 'tls.key');
}

function joinApi(info: BrokerInfo, facts: Facts, keyPem: string, dryRun: boolean): Promise<JoinResponse> {
  const publicKeyPem = createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString();
  return callJoinApi<JoinResponse>({ address: info.joinAddresses, caPem: info.caPem }, '/v1/join', {
    token: info.token, clusterId: facts.clusterId, podCidrs: facts.podCidrs, serviceCidrs: facts.serviceCidrs, publicKeyPem, dryRun,
  });
}

const secretOf = (name: string, files: Record<string, string>): Obj => opaqueSecret(name, NS, files);

async function apply(kube: Kube, info: BrokerInfo, facts: Facts, s: JoinSettings, stored: string | undefined, say: (s: string) => void): Promise<void> {
  for (const o of await manifest('namespace.yaml')) await kube.apply(o);
  const crdFiles = JOIN_CRDS;
  for (const f of crdFiles) for (const o of await manifest(`crds/${f}.json`)) await kube.apply(o);
  await waitFor('the CRDs established', 60_000, async () => {
    for (const f of crdFiles) {
      const crd = await kube.read<Obj & { status?: { conditions?: { type: string; status: string }[] } }>('apiextensions.k8s.io/v1', 'CustomResourceDefinition', f);
      if (crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') !== true) return undefined;
    }
    return true;
  }, 250);
  say(`✓ namespace ${NS} and ${crdFiles.length} CRDs`);
  for (const f of JOIN_RBAC) for (const o of await manifest(f)) await kube.apply(o);
  say('✓ RBAC of the gateway, the route agent, the MCS API and the policy parts');
  if (facts.credentials !== 'have') {
    // the key first: a join cut short after the broker answered gets the same certificate again with it
    const keyPem = stored !== undefined && stored !== '' ? stored : generateKeyPair().keyPem;
    if (stored === undefined || stored === '') await kube.apply(secretOf(CLIENT_SECRET, { 'tls.key': keyPem }));
    const joined = await joinApi(info, facts, keyPem, false);
    await kube.apply(secretOf(CLIENT_SECRET, { 'tls.key': keyPem, 'tls.crt': joined.certPem, 'ca.crt': joined.caPem }));
    say(`✓ certificate for ${facts.clusterId} from the broker (Secret ${NS}/${CLIENT_SECRET}; the token is spent)${joined.globalCidr === '' ? '' : `, global CIDR ${joined.globalCidr}`}`);
  }
  if (s.cableDriver === 'ipsec') await gatewayCertificates(kube, info, facts, say);
  await kube.apply({ apiVersion: 'about.k8s.io/v1alpha1', kind: 'ClusterProperty', metadata: { name: 'cluster.clusterset.k8s.io' }, spec: { value: facts.clusterId } });
  const gw = await manifest('gateway/deployment.yaml');
  await kube.apply(gatewayConfigMap(pick(gw, 'ConfigMap', 'isthmus-gateway'), s));
  const mcs = await manifest('mcs-api/deployment.yaml');
  await kube.apply(mcsConfigMap(pick(mcs, 'ConfigMap', 'isthmus-mcs'), s));
  say(`✓ ClusterProperty cluster.clusterset.k8s.io=${facts.clusterId}, ConfigMaps isthmus-gateway and isthmus-mcs`);
  for (const n of facts.toLabel) {
    await kube.core.patchNode({ name: n, body: { metadata: { labels: { [GATEWAY_LABEL]: 'true' }, annotations: { [JOINED_LABEL_ANNOTATION]: 'isthmus-join' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))
      .catch((err: unknown) => { throw kube.wrap(err, `label node ${n}`); });
  }
  if (facts.toLabel.length > 0) say(`✓ labelled ${facts.toLabel.join(', ')} ${GATEWAY_LABEL}=true`);
  await kube.apply(workload(pick(gw, 'Deployment', 'isthmus-gateway'), s));
  for (const o of await manifest('route-agent/daemonset.yaml')) await kube.apply(workload(o, s));
  for (const o of mcs.filter((x) => x.kind !== 'ConfigMap')) await kube.apply(o.kind === 'Deployment' ? workload(o, s) : o);
  for (const f of POLICY_WORKLOADS) for (const o of await manifest(f)) await kube.apply(workload(o, s));
  say(`✓ gateway Deployment (${s.gatewayReplicas} replica${s.gatewayReplicas === 1 ? '' : 's'}, ${s.cableDriver}), route agent DaemonSet, isthmus-mcs, isthmus-dns, policy controller and policy agent DaemonSet`);
}

/**
 * IPsec: a certificate `<node>.<cluster>` for every gateway node, signed by the broker for
 * keys made here (the cluster's own certificate authenticates the request), all in one
 * Secret; certificates still good are kept, so a re-run only fills in new gateway nodes
 * and renews what is close to expiry.
 */
async function gatewayCertificates(kube: Kube, info: BrokerInfo, facts: Facts, say: (s: string) => void): Promise<void> {
  const existing = await kube.read('v1', 'Secret', IPSEC_SECRET, NS);
  const files: Record<string, string> = Object.fromEntries(Object.keys(existing?.data ?? {}).map((k) => [k, secretText(existing, k)]));
  const todo = gatewayCertsToIssue(files, facts.gatewayNodes, facts.clusterId, info.caPem);
  if (todo.length === 0) {
    say(`✓ IPsec certificates of ${facts.gatewayNodes.join(', ')} kept (Secret ${NS}/${IPSEC_SECRET})`);
    return;
  }
  const client = await kube.read('v1', 'Secret', CLIENT_SECRET, NS);
  const auth = { certPem: secretText(client, 'tls.crt'), keyPem: secretText(client, 'tls.key') };
  for (let i = 0; i < todo.length; i += MAX_GATEWAYS_PER_REQUEST) {
    const batch = todo.slice(i, i + MAX_GATEWAYS_PER_REQUEST).map((name) => ({ name, keyPem: generateKeyPair().keyPem }));
    const got = await callJoinApi<GatewayCertificatesResponse>({ address: info.joinAddresses, caPem: info.caPem, client: auth }, '/v1/gateway-certificates', {
      gateways: batch.map((g) => ({ name: g.name, publicKeyPem: createPublicKey(g.keyPem).export({ type: 'spki', format: 'pem' }).toString() })),
    });
    for (const g of batch) {
      const cert = got.certificates.find((c) => c.name === g.name)?.certPem;
      if (cert === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, `the broker sent no certificate for gateway ${g.name}: run join again`);
      files[`${g.name}.crt`] = cert;
      files[`${g.name}.key`] = g.keyPem;
    }
    files['ca.crt'] = got.caPem;
  }
  await kube.apply(secretOf(IPSEC_SECRET, files));
  say(`✓ IPsec certificates for ${todo.map((n) => `${n}.${facts.clusterId}`).join(', ')} from the broker (Secret ${NS}/${IPSEC_SECRET}; the keys never left this cluster)`);
}

interface GatewayStatus { status?: { haStatus?: string; connections?: { cluster: string; status: string }[] } }

/** Progress lines until the active gateway has a connected cable to every other member. */
async function waitConnected(kube: Kube, facts: Facts, timeoutMs: number, say: (s: string) => void): Promise<void> {
  const broker = await clusterBrokerClient(kube, 'join');
  if (broker === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, `the cluster's broker credentials are not in ${NS}: run join again`);
  const client = broker.client;
  try {
    const state = async (): Promise<{ line: string; done: boolean }> => {
      const members = (await client.list(['CLUSTER'])).events.map((e) => e.key).filter((k) => k !== facts.clusterId).sort();
      const gws = await kube.list<Obj & GatewayStatus>('isthmus.dev/v1alpha1', 'Gateway', NS);
      const active = gws.find((g) => g.status?.haStatus === 'active');
      const ds = await kube.apps.readNamespacedDaemonSet({ name: 'isthmus-route-agent', namespace: NS });
      const agents = `route agents ${ds.status?.numberReady ?? 0}/${ds.status?.desiredNumberScheduled ?? 0}`;
      if (active === undefined) return { line: `  waiting for an active gateway (${gws.length} gateway pod${gws.length === 1 ? '' : 's'} reporting); ${agents}`, done: false };
      const conns = new Map((active.status?.connections ?? []).map((c) => [c.cluster, c.status]));
      const up = members.filter((m) => conns.get(m) === 'connected');
      const line = `  gateway ${active.metadata?.name ?? '?'} active: cables connected ${up.length}/${members.length}${members.length === 0 ? '' : ` (${members.map((m) => `${m} ${conns.get(m) ?? 'none'}`).join(', ')})`}; ${agents}`;
      return { line, done: up.length === members.length && (ds.status?.numberReady ?? 0) >= (ds.status?.desiredNumberScheduled ?? 1) };
    };
    let last = '';
    await waitFor('every cable connected', timeoutMs, async () => {
      const s = await state();
      if (s.line !== last) say(s.line);
      last = s.line;
      return s.done ? true : undefined;
    }, 500);
    say(`✓ ${facts.clusterId}: every cable connected`);
  } finally {
    client.close();
  }
}

export const joinCommand: Command = {
  name: 'join',
  run,
};
