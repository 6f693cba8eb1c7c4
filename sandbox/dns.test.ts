import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { V1ConfigMap, V1Deployment, V1Service } from '@kubernetes/client-node';
import { ErrorCodes } from '../core/index.ts';
import { DEFAULT_COREDNS_IMAGE, clusterDnsIp, dnsManifests, renderCorefile, type DnsObject } from './dns.ts';
import { pins } from './versions.ts';
import { errorCode } from '../core/testing.ts';

function find<T extends DnsObject>(items: readonly DnsObject[], kind: string, name: string): T {
  const found = items.filter((o) => o.kind === kind && o.metadata?.name === name);
  assert.is(found.length, 1, `exactly one ${kind} ${name}`);
  return found[0] as T;
}

/** The Corefile's lines without indentation, blank lines dropped. */
function lines(corefile: string): string[] {
  return corefile.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

test('cluster DNS IP is the 10th address of the service CIDR', () => {
  assert.is(clusterDnsIp('10.96.0.0/12'), '10.96.0.10');
  assert.is(clusterDnsIp('10.101.0.0/16'), '10.101.0.10');
  assert.is(clusterDnsIp('10.0.0.0/28'), '10.0.0.10');
  assert.is(clusterDnsIp('fd00:10:96::/112'), 'fd00:10:96::a');
});

test('cluster DNS IP refuses malformed and too small CIDRs', () => {
  assert.is(errorCode(() => clusterDnsIp('10.96.0.0')), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => clusterDnsIp('10.96.0.1/16')), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => clusterDnsIp('10.0.0.0/29')), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => clusterDnsIp('banana')), ErrorCodes.INVALID_ARGUMENT);
});

test('Corefile: the kubernetes plugin for cluster.local, no forward without upstream', () => {
  const corefile = renderCorefile();
  assert.equal(lines(corefile), [
    '.:53 {',
    'errors',
    'health :8080',
    'ready :8181',
    'kubernetes cluster.local in-addr.arpa ip6.arpa {',
    'pods insecure',
    'fallthrough in-addr.arpa ip6.arpa',
    'ttl 30',
    '}',
    'cache 30',
    'loadbalance',
    '}',
  ]);
  assert.ok(corefile.endsWith('}\n'));
  assert.not.match(corefile, /forward|loop/);
  // Braces balance, so CoreDNS sees one server block.
  assert.is((corefile.match(/{/g) ?? []).length, (corefile.match(/}/g) ?? []).length);
});

test('Corefile: custom domain and upstreams', () => {
  const corefile = renderCorefile({ clusterDomain: 'c2.example', upstream: ' 192.0.2.53  [2001:db8::53]:53 ' });
  const l = lines(corefile);
  assert.ok(l.includes('kubernetes c2.example in-addr.arpa ip6.arpa {'));
  assert.ok(l.includes('forward . 192.0.2.53 [2001:db8::53]:53'));
  // forward comes after the kubernetes block and before cache.
  assert.ok(l.indexOf('forward . 192.0.2.53 [2001:db8::53]:53') > l.indexOf('ttl 30'));
  assert.ok(l.indexOf('forward . 192.0.2.53 [2001:db8::53]:53') < l.indexOf('cache 30'));
  assert.ok(lines(renderCorefile({ upstream: '/etc/resolv.conf' })).includes('forward . /etc/resolv.conf'));
});

test('Corefile: refuses input that would break or inject into it', () => {
  assert.is(errorCode(() => renderCorefile({ clusterDomain: 'Cluster.Local' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => renderCorefile({ clusterDomain: 'a..b' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => renderCorefile({ clusterDomain: 'x {\n}' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => renderCorefile({ upstream: '' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => renderCorefile({ upstream: '1.1.1.1\n}\nerrors' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => renderCorefile({ upstream: '1.1.1.1 {' })), ErrorCodes.INVALID_ARGUMENT);
});

test('manifests: a v1 List of the six objects in apply order, all DNS objects in kube-system', () => {
  const list = dnsManifests({ serviceCidr: '10.102.0.0/16' });
  assert.is(list.apiVersion, 'v1');
  assert.is(list.kind, 'List');
  assert.equal(list.items.map((o) => `${String(o.kind)}/${String(o.metadata?.name)}`), [
    'ServiceAccount/coredns',
    'ClusterRole/system:coredns',
    'ClusterRoleBinding/system:coredns',
    'ConfigMap/coredns',
    'Deployment/coredns',
    'Service/kube-dns',
  ]);
  for (const o of list.items) {
    assert.ok(typeof o.apiVersion === 'string' && o.apiVersion !== '', `${String(o.kind)} has an apiVersion`);
    const namespaced = o.kind !== 'ClusterRole' && o.kind !== 'ClusterRoleBinding';
    assert.is(o.metadata?.namespace, namespaced ? 'kube-system' : undefined);
  }
  // Plain JSON: survives a round trip unchanged.
  assert.equal(JSON.parse(JSON.stringify(list)), list);
  assert.equal(dnsManifests({ serviceCidr: '10.102.0.0/16' }), list);
});

test('manifests: RBAC lets the coredns service account list and watch what the kubernetes plugin reads', () => {
  const { items } = dnsManifests({ serviceCidr: '10.96.0.0/12' });
  const role = find<DnsObject>(items, 'ClusterRole', 'system:coredns');
  assert.ok('rules' in role);
  assert.equal(role.rules, [
    { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
  ]);
  const binding = find<DnsObject>(items, 'ClusterRoleBinding', 'system:coredns');
  assert.ok('roleRef' in binding);
  assert.equal(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' });
  assert.equal(binding.subjects, [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }]);
  assert.is(find(items, 'ServiceAccount', 'coredns').apiVersion, 'v1');
});

test('manifests: the ConfigMap holds the rendered Corefile', () => {
  const { items } = dnsManifests({ serviceCidr: '10.96.0.0/12', clusterDomain: 'c1.local', upstream: '192.0.2.53' });
  const cm = find<V1ConfigMap>(items, 'ConfigMap', 'coredns');
  assert.equal(Object.keys(cm.data ?? {}), ['Corefile']);
  assert.is(cm.data?.['Corefile'], renderCorefile({ clusterDomain: 'c1.local', upstream: '192.0.2.53' }));
});

test('manifests: the Deployment runs CoreDNS with the ConfigMap as its Corefile', () => {
  const { items } = dnsManifests({ serviceCidr: '10.96.0.0/12' });
  const d = find<V1Deployment>(items, 'Deployment', 'coredns');
  assert.is(d.apiVersion, 'apps/v1');
  assert.is(d.spec?.replicas, 2);
  assert.equal(d.spec?.selector.matchLabels, { 'k8s-app': 'kube-dns' });
  assert.equal(d.spec?.template.metadata?.labels, { 'k8s-app': 'kube-dns' });
  const pod = d.spec?.template.spec;
  assert.is(pod?.serviceAccountName, 'coredns');
  assert.is(pod?.dnsPolicy, 'Default');
  assert.is(pod?.containers.length, 1);
  const c = pod?.containers[0];
  assert.is(c?.image, DEFAULT_COREDNS_IMAGE);
  assert.equal(c?.args, ['-conf', '/etc/coredns/Corefile']);
  assert.equal(c?.ports?.map((p) => [p.name, p.containerPort, p.protocol]), [
    ['dns', 53, 'UDP'], ['dns-tcp', 53, 'TCP'], ['health', 8080, 'TCP'],
  ]);
  assert.equal(c?.readinessProbe?.httpGet?.path, '/ready');
  assert.equal(c?.readinessProbe?.httpGet?.port, 8181);
  assert.equal(c?.livenessProbe?.httpGet?.path, '/health');
  assert.equal(c?.livenessProbe?.httpGet?.port, 8080);
  const mount = c?.volumeMounts?.find((m) => m.mountPath === '/etc/coredns');
  assert.ok(mount, 'a volume is mounted at /etc/coredns');
  const volume = pod?.volumes?.find((v) => v.name === mount.name);
  assert.equal(volume?.configMap, { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] });
});

test('manifests: image and replicas can be set and are checked', () => {
  const { items } = dnsManifests({ serviceCidr: '10.96.0.0/12', image: 'coredns/coredns:1.15.0', replicas: 1 });
  const d = find<V1Deployment>(items, 'Deployment', 'coredns');
  assert.is(d.spec?.replicas, 1);
  assert.is(d.spec?.template.spec?.containers[0]?.image, 'coredns/coredns:1.15.0');
  assert.is(errorCode(() => dnsManifests({ serviceCidr: '10.96.0.0/12', replicas: 0 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => dnsManifests({ serviceCidr: '10.96.0.0/12', replicas: 1.5 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => dnsManifests({ serviceCidr: '10.96.0.0/12', image: 'a b' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(errorCode(() => dnsManifests({ serviceCidr: '10.96.0.0/30' })), ErrorCodes.INVALID_ARGUMENT);
});

test('manifests: the kube-dns Service sits at the cluster DNS IP and selects the CoreDNS pods', () => {
  const { items } = dnsManifests({ serviceCidr: '10.103.0.0/16' });
  const s = find<V1Service>(items, 'Service', 'kube-dns');
  assert.is(s.metadata?.namespace, 'kube-system');
  assert.is(s.spec?.clusterIP, '10.103.0.10');
  assert.equal(s.spec?.clusterIPs, ['10.103.0.10']);
  assert.equal(s.spec?.selector, { 'k8s-app': 'kube-dns' });
  assert.equal(s.spec?.ports?.map((p) => [p.name, p.port, p.protocol, p.targetPort]), [
    ['dns', 53, 'UDP', 53], ['dns-tcp', 53, 'TCP', 53],
  ]);
});

test('the default image is the CoreDNS release pinned in package.json', () => {
  assert.is(DEFAULT_COREDNS_IMAGE, `registry.k8s.io/coredns/coredns:${pins().coredns}`);
});

test.run();
