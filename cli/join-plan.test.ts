import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { errorCode } from '../core/testing.ts';
import { createCA, issueCertificate } from '../core/index.ts';
import {
  BROKER_ANNOTATION, IPSEC_SECRET, JOIN_RBAC, JOIN_WORKLOADS, POLICY_WORKLOADS, checkClusterId, coveringCidr, gatewayCertsToIssue, gatewayConfigMap, kubeadmSubnets, mcsConfigMap, podBrokerAddress, proxyModeOf, workload, type JoinSettings,
} from './join-plan.ts';
import { cleanupPod } from './uninstall.ts';
import { manifest, pick } from './kube-apply.ts';
import { brokerDeployment, etcdStatefulSet, parseDuration } from './broker-deploy.ts';

test('coveringCidr: the nodes\' common prefix, at most a /16 (/48)', () => {
  const table: [string[], string[]][] = [
    [['10.1.0.0/24', '10.1.1.0/24'], ['10.1.0.0/16']],
    [['10.1.0.0/24'], ['10.1.0.0/16']],
    [['10.1.0.0/24', '10.2.0.0/24'], ['10.0.0.0/14']],
    [['10.244.0.0/24', '10.244.7.0/24', 'fd00:1:2:3::/64'], ['10.244.0.0/16', 'fd00:1:2::/48']],
    [['10.0.0.0/12'], ['10.0.0.0/12']],
  ];
  for (const [nodes, want] of table) assert.equal(coveringCidr(nodes), want, nodes.join(' '));
});

test('proxyModeOf reads config.conf; empty means iptables', () => {
  assert.is(proxyModeOf(undefined), 'unknown');
  assert.is(proxyModeOf('apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ""\n'), 'iptables');
  assert.is(proxyModeOf('mode: ipvs\n'), 'ipvs');
  assert.is(proxyModeOf('kind: KubeProxyConfiguration\nmode: "nftables"\n'), 'nftables');
});

test('kubeadmSubnets', () => {
  const cc = 'networking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16,fd00::/56\n  serviceSubnet: "10.96.0.0/12"\n';
  assert.equal(kubeadmSubnets(cc), { pod: ['10.244.0.0/16', 'fd00::/56'], service: ['10.96.0.0/12'] });
  assert.equal(kubeadmSubnets(undefined), { pod: [], service: [] });
});

test('cluster ids are RFC-1123 labels', () => {
  assert.is(checkClusterId('c-1'), 'c-1');
  for (const bad of ['', 'C1', '-a', 'a_b', 'x'.repeat(64)]) assert.is(errorCode(() => checkClusterId(bad)), ErrorCodes.INVALID_ARGUMENT, bad);
});

const settings: JoinSettings = {
  clusterId: 'c2', brokers: ['172.29.0.11:31000', '172.29.0.12:31000'], cableDriver: 'wireguard', podCidrs: ['10.2.0.0/16'], serviceCidrs: ['10.102.0.0/16'],
  publicIp: '', natTraversal: true, privateSockets: false, gatewayReplicas: 3, image: 'isthmus:test',
};

test('the gateway ConfigMap and workloads of deploy/ filled in for one cluster, every $(VAR) the manifests use defined', async () => {
  const gw = await manifest('gateway/deployment.yaml');
  const cm = gatewayConfigMap(pick(gw, 'ConfigMap', 'isthmus-gateway'), settings);
  assert.equal(cm.data, {
    CLUSTER_ID: 'c2', BROKER: '172.29.0.11:31000,172.29.0.12:31000', CABLE_DRIVER: 'wireguard', POD_CIDRS: '10.2.0.0/16', SERVICE_CIDRS: '10.102.0.0/16',
    PRIVATE_IP: 'auto', PUBLIC_IP: '', FORCE_NAT: 'true', PRIVATE_SOCKETS: 'false', POD_BROKER: '172.29.0.11:31000,172.29.0.12:31000',
  });
  // the MCS controller (pod network) dials POD_BROKER's addresses
  const mcs = pick(await manifest('mcs-api/deployment.yaml'), 'ConfigMap', 'isthmus-mcs');
  assert.is(mcsConfigMap(mcs, settings).data?.['BROKER'], '172.29.0.11:31000,172.29.0.12:31000');
  assert.is(mcsConfigMap(mcs, { ...settings, podBroker: '10.101.0.20:7443' }).data?.['BROKER'], '10.101.0.20:7443');
  // in the cluster hosting the broker, pods dial its cluster IP; the gateways keep broker-info's addresses
  const hosting = gatewayConfigMap(pick(gw, 'ConfigMap', 'isthmus-gateway'), { ...settings, podBroker: '10.101.0.20:7443' });
  assert.equal([hosting.data?.['BROKER'], hosting.data?.['POD_BROKER']], ['172.29.0.11:31000,172.29.0.12:31000', '10.101.0.20:7443']);
  const dep = workload(pick(gw, 'Deployment', 'isthmus-gateway'), settings) as { spec: { replicas: number; template: { spec: { containers: { image: string; args: string[]; env?: { name: string }[] }[] } } } };
  assert.is(dep.spec.replicas, 3);
  const ra = (await manifest('route-agent/daemonset.yaml'))[0];
  assert.ok(ra);
  const policy = (await Promise.all(POLICY_WORKLOADS.map((f) => manifest(f)))).flat().map((o) => workload(o, settings) as typeof dep);
  assert.is(policy.length, 2);
  for (const c of [...dep.spec.template.spec.containers, ...(workload(ra, settings) as typeof dep).spec.template.spec.containers, ...policy.flatMap((o) => o.spec.template.spec.containers)]) {
    assert.is(c.image, 'isthmus:test');
    const defined = new Set([...Object.keys(cm.data ?? {}), ...(c.env ?? []).map((e) => e.name)]);
    for (const a of c.args) for (const m of a.matchAll(/\$\(([A-Z_]+)\)/g)) assert.ok(defined.has(m[1] ?? ''), `${a}: ${m[1] ?? ''} is defined`);
  }
});

test('the workloads that dial the broker name its addresses on their pod template (a join that changes them rolls them out); the others do not', async () => {
  const objs = [...await manifest('gateway/deployment.yaml'), ...await manifest('route-agent/daemonset.yaml'), ...await manifest('mcs-api/deployment.yaml'),
    ...(await Promise.all(POLICY_WORKLOADS.map((f) => manifest(f)))).flat()].filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet');
  const annotated = (st: JoinSettings): Record<string, string | undefined> => Object.fromEntries(objs.map((o) => {
    const w = workload(o, st) as { metadata?: { name?: string }; spec: { template: { metadata?: { annotations?: Record<string, string> } } } };
    return [w.metadata?.name ?? '', w.spec.template.metadata?.annotations?.[BROKER_ANNOTATION]];
  }));
  const list = '172.29.0.11:31000,172.29.0.12:31000';
  assert.equal(annotated(settings), {
    'isthmus-gateway': list, 'isthmus-route-agent': undefined, 'isthmus-mcs': list, 'isthmus-dns': undefined, 'isthmus-policy-controller': list, 'isthmus-policy-agent': undefined,
  });
  const hosting = annotated({ ...settings, podBroker: '10.101.0.20:7443' });
  assert.equal([hosting['isthmus-gateway'], hosting['isthmus-mcs'], hosting['isthmus-policy-controller']], [list, '10.101.0.20:7443', '10.101.0.20:7443']);
  const gw = workload(pick(await manifest('gateway/deployment.yaml'), 'Deployment', 'isthmus-gateway'), settings) as { spec: { template: { metadata?: { labels?: Record<string, string> } } } };
  assert.is(gw.spec.template.metadata?.labels?.['app.kubernetes.io/name'], 'isthmus-gateway', 'the template keeps its labels');
});

test('ipsec: the gateway Deployment mounts the IPsec Secret and each pod reads its node\'s files; other drivers get neither', async () => {
  const gw = pick(await manifest('gateway/deployment.yaml'), 'Deployment', 'isthmus-gateway');
  type Dep = { spec: { template: { spec: { volumes: { name: string; secret?: { secretName: string } }[]; containers: { name: string; args: string[]; volumeMounts: { name: string; mountPath: string }[] }[] } } } };
  const ipsec = workload(gw, { ...settings, cableDriver: 'ipsec' }) as Dep;
  const c = ipsec.spec.template.spec.containers.find((x) => x.name === 'gateway');
  assert.ok(c);
  assert.ok(c.args.includes('--tls-dir=/etc/isthmus/ipsec') && c.args.includes('--tls-name=$(NODE_NAME)'));
  assert.ok(c.volumeMounts.some((m) => m.name === 'ipsec-certs' && m.mountPath === '/etc/isthmus/ipsec'));
  assert.ok(ipsec.spec.template.spec.volumes.some((v) => v.secret?.secretName === IPSEC_SECRET));
  const wg = workload(gw, settings) as Dep;
  assert.not.ok(JSON.stringify(wg).includes('ipsec'));
  assert.not.ok(JSON.stringify(pick(await manifest('gateway/deployment.yaml'), 'Deployment', 'isthmus-gateway')).includes('--tls-name'), 'the manifest itself is unchanged');
});

test('gatewayCertsToIssue: a node with no, a foreign, a misnamed or an expiring certificate gets a new one; a good one is kept', () => {
  const ca = createCA({ commonName: 'clusterset', validDays: 365 });
  const other = createCA({ commonName: 'other', validDays: 365 });
  const cert = (by: typeof ca, cn: string, days: number): { crt: string; key: string } => {
    const c = issueCertificate({ ca: by, commonName: cn, organizations: ['isthmus:gateway'], usages: ['server', 'client'], validDays: days });
    return { crt: c.certPem, key: c.keyPem };
  };
  const good = cert(ca, 'n1.c2', 90);
  const files: Record<string, string> = { 'n1.crt': good.crt, 'n1.key': good.key };
  const put = (node: string, x: { crt: string; key: string }): void => { files[`${node}.crt`] = x.crt; files[`${node}.key`] = x.key; };
  put('n2', cert(other, 'n2.c2', 90));
  put('n3', cert(ca, 'n1.c2', 90));
  put('n4', cert(ca, 'n4.c2', 3));
  put('n5', { crt: cert(ca, 'n5.c2', 90).crt, key: '' });
  put('n6', { crt: 'garbage', key: 'x' });
  assert.equal(gatewayCertsToIssue(files, ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'], 'c2', ca.certPem), ['n2', 'n3', 'n4', 'n5', 'n6', 'n7']);
});

interface PodSpecOf { kind: string; metadata: { name: string }; spec: { replicas?: number; strategy?: { type: string }; template: { spec: {
  serviceAccountName: string; hostNetwork?: boolean; tolerations?: unknown[]; volumes?: { secret?: { secretName: string } }[];
  containers: { args: string[]; ports?: { containerPort: number }[]; securityContext?: { capabilities?: { add?: string[] } }; volumeMounts?: { mountPath: string }[] }[];
} } } }

test('the policy workloads: one controller with the broker certificate, an agent on every node of the host network with NET_ADMIN and its own metrics port', async () => {
  const [controller, agent] = (await Promise.all(POLICY_WORKLOADS.map((f) => manifest(f)))).flat() as unknown as PodSpecOf[];
  assert.ok(controller !== undefined && agent !== undefined);
  assert.is(controller.kind, 'Deployment');
  assert.is(controller.spec.replicas, 1);
  assert.is(controller.spec.strategy?.type, 'Recreate', 'never two controllers publishing this cluster\'s records');
  const cc = controller.spec.template.spec.containers[0];
  assert.equal(cc?.args.slice(0, 2), ['policy', 'controller']);
  assert.ok(cc?.args.includes('--broker-tls-dir=/etc/isthmus/broker'));
  assert.equal(controller.spec.template.spec.volumes?.map((v) => v.secret?.secretName), ['isthmus-broker-client']);
  assert.is(agent.kind, 'DaemonSet');
  assert.is(agent.spec.template.spec.hostNetwork, true);
  assert.ok((agent.spec.template.spec.tolerations ?? []).length > 0, 'on every node, tainted ones too');
  const ac = agent.spec.template.spec.containers[0];
  assert.equal(ac?.args.slice(0, 2), ['policy', 'agent']);
  assert.not.ok(ac?.args.some((a) => a.startsWith('--audit-log')), 'the audit log goes to stdout');
  assert.equal(ac?.securityContext?.capabilities?.add, ['NET_ADMIN', 'NET_RAW']);
  assert.is(agent.spec.template.spec.volumes, undefined, 'no broker credential on the nodes');
  // hostNetwork ports of the other node workloads: gateway 9464, route agent 9465
  const hostPorts = new Set<number>();
  for (const f of ['gateway/deployment.yaml', 'route-agent/daemonset.yaml', 'policy/agent.yaml']) {
    for (const o of (await manifest(f)) as unknown as PodSpecOf[]) {
      if (o.kind === 'ConfigMap' || o.spec.template.spec.hostNetwork !== true) continue;
      for (const a of o.spec.template.spec.containers.flatMap((c) => c.args)) {
        const port = /^--metrics=.*:(\d+)$/.exec(a)?.[1];
        if (port === undefined) continue;
        assert.not.ok(hostPorts.has(Number(port)), `${f}: port ${port} is free on the node`);
        hostPorts.add(Number(port));
      }
    }
  }
  assert.equal([...hostPorts].sort(), [9464, 9465, 9466]);
});

test('join and uninstall agree: every workload join applies is stopped by uninstall, every ServiceAccount is in the RBAC join applies', async () => {
  const files = ['gateway/deployment.yaml', 'route-agent/daemonset.yaml', 'mcs-api/deployment.yaml', ...POLICY_WORKLOADS];
  const applied = (await Promise.all(files.map((f) => manifest(f)))).flat().filter((o) => o.kind !== 'ConfigMap');
  assert.equal(applied.map((o) => `${o.kind ?? ''} ${o.metadata?.name ?? ''}`).sort(), JOIN_WORKLOADS.map(([, kind, name]) => `${kind} ${name}`).sort());
  const accounts = new Set((await Promise.all(JOIN_RBAC.map((f) => manifest(f)))).flat().filter((o) => o.kind === 'ServiceAccount').map((o) => o.metadata?.name));
  for (const o of applied as unknown as PodSpecOf[]) {
    if (o.kind === 'Service') continue;
    assert.ok(accounts.has(o.spec.template.spec.serviceAccountName), `${o.metadata.name}: ServiceAccount ${o.spec.template.spec.serviceAccountName} in ${JOIN_RBAC.join(', ')}`);
  }
});

test('the cleanup pod: the route agent, the gateway and the policy agent each remove their state on the node', () => {
  const pod = cleanupPod('c3-n1', 'isthmus:x', true, 'c3') as unknown as PodSpecOf & { spec: { nodeName: string; hostNetwork: boolean; containers: { name: string; image: string; args: string[] }[] } };
  assert.is(pod.spec.nodeName, 'c3-n1');
  assert.is(pod.spec.hostNetwork, true);
  assert.equal(pod.spec.containers.map((c) => `${c.name}: ${c.args.join(' ')}`), [
    'route-agent: route-agent --cleanup --node=c3-n1',
    'gateway: gateway --cleanup --state-dir=/var/lib/isthmus/gateway/c3-n1 --private-sockets=true',
    'policy-agent: policy agent --cleanup --cluster=c3 --node=c3-n1',
  ]);
  for (const c of pod.spec.containers) assert.is(c.image, 'isthmus:x');
});

test('etcd for 1 or 3 members on a PVC or an emptyDir; the broker with its replicas and options', async () => {
  const sts = pick(await manifest('broker/etcd.yaml'), 'StatefulSet', 'isthmus-etcd');
  const three = etcdStatefulSet(sts, 3, 'emptyDir', 'isthmus:x') as { spec: { replicas: number; volumeClaimTemplates?: unknown; template: { spec: { initContainers: { image: string; args: string[] }[]; containers: { command: string[] }[]; volumes: { name: string }[] } } } };
  assert.is(three.spec.replicas, 3);
  assert.is(three.spec.volumeClaimTemplates, undefined);
  assert.equal(three.spec.template.spec.volumes.map((v) => v.name), ['boot', 'data']);
  const init = three.spec.template.spec.initContainers[0];
  assert.is(init?.image, 'isthmus:x');
  assert.equal(init?.args.slice(0, 2), ['broker', 'etcd-bootstrap']);
  assert.ok(init?.args.includes('--initial-cluster=isthmus-etcd-0=http://isthmus-etcd-0.isthmus-etcd:2380,isthmus-etcd-1=http://isthmus-etcd-1.isthmus-etcd:2380,isthmus-etcd-2=http://isthmus-etcd-2.isthmus-etcd:2380'));
  assert.equal(three.spec.template.spec.containers[0]?.command, ['etcd', '--config-file=/etc/etcd-boot/etcd.yaml']);
  const one = etcdStatefulSet(sts, 1, 'pvc') as { spec: { volumeClaimTemplates?: unknown } };
  assert.ok(one.spec.volumeClaimTemplates !== undefined);
  const dep = brokerDeployment(pick(await manifest('broker/broker.yaml'), 'Deployment', 'isthmus-broker'), 3, 'isthmus:x', true, { 'a/b': 'c' }) as { spec: { replicas: number; template: { spec: { nodeSelector: Record<string, string>; containers: { image: string; args: string[] }[] } } } };
  assert.is(dep.spec.replicas, 3);
  assert.equal(dep.spec.template.spec.nodeSelector, { 'a/b': 'c' });
  assert.ok(dep.spec.template.spec.containers[0]?.args.includes('--global-addressing'));
  assert.ok(dep.spec.template.spec.containers[0]?.args.includes('--join-ca-dir=/etc/isthmus/ca'));
});

test('durations', () => {
  assert.is(parseDuration('24h'), 86_400);
  assert.is(parseDuration('90'), 90);
  assert.is(parseDuration('30m'), 1800);
  assert.throws(() => parseDuration('1w'));
});

test('podBrokerAddress: the Service\'s cluster IP where the broker runs here and its certificate names it, else broker-info\'s addresses', () => {
  const ca = createCA({ commonName: 'clusterset', validDays: 365 });
  const other = createCA({ commonName: 'other', validDays: 365 });
  const cert = (ips: string[]): string => issueCertificate({ ca, commonName: 'broker', usages: ['server'], validDays: 30, ipAddresses: ips, dnsNames: ['isthmus-broker.isthmus-system.svc'] }).certPem;
  const info = { brokers: ['172.29.0.11:30210', '172.29.0.12:30210'], caPem: ca.certPem };
  const here = { caPem: `${ca.certPem}\n`, certPem: cert(['172.29.0.11', '10.101.215.42', 'fd00::42']), clusterIps: ['10.101.215.42', 'fd00::42'], port: 7443 };
  assert.equal(podBrokerAddress(info, here), { address: '10.101.215.42:7443' });
  assert.equal(podBrokerAddress(info, { ...here, clusterIps: ['fd00::42'] }), { address: '[fd00::42]:7443' });
  // another cluster, or another clusterset's broker in this one
  assert.equal(podBrokerAddress(info, undefined), { address: '172.29.0.11:30210,172.29.0.12:30210' });
  assert.equal(podBrokerAddress(info, { ...here, caPem: other.certPem }), { address: '172.29.0.11:30210,172.29.0.12:30210' });
  // deployed before the certificate named the cluster IP: the external address, and what to do
  const old = podBrokerAddress(info, { ...here, certPem: cert(['172.29.0.11']) });
  assert.is(old.address, '172.29.0.11:30210,172.29.0.12:30210');
  assert.match(old.note ?? '', /run `isthmus broker deploy` again .* then join again/);
  // a Service without the grpc port, or a Secret without a certificate: nothing local to use
  assert.equal(podBrokerAddress(info, { ...here, port: 0 }), { address: '172.29.0.11:30210,172.29.0.12:30210' });
  assert.equal(podBrokerAddress(info, { ...here, certPem: '' }), { address: '172.29.0.11:30210,172.29.0.12:30210' });
});

test.run();
