import type {
  V1ClusterRole, V1ClusterRoleBinding, V1ConfigMap, V1Deployment, V1Service, V1ServiceAccount,
} from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, nthAddress, parseCidr } from '../core/index.ts';

/**
 * The cluster DNS of a sandbox cluster, as in a kubeadm cluster: CoreDNS with the
 * `kubernetes` plugin, its Corefile in the ConfigMap kube-system/coredns (so later
 * work can add a `clusterset.local` stub by editing it), behind the Service
 * kube-system/kube-dns at the 10th address of the service CIDR. Pure functions; the
 * caller applies the objects.
 */

/** Matches the `"isthmus".coredns` pin in package.json (a unit test checks they agree). */
export const DEFAULT_COREDNS_IMAGE = 'registry.k8s.io/coredns/coredns:v1.15.0';
export const DNS_NAMESPACE = 'kube-system';
/** The label every CoreDNS pod carries and the kube-dns Service selects. */
export const DNS_APP_LABEL = { 'k8s-app': 'kube-dns' } as const;
/** Ports CoreDNS serves inside its pod (see renderCorefile). */
export const DNS_HEALTH_PORT = 8080;
export const DNS_READY_PORT = 8181;

function invalid(message: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, message);
}

/**
 * The kube-dns Service IP: the 10th address of the service CIDR (10.96.0.10 for
 * 10.96.0.0/12), the address kubeadm picks and kubelets put in resolv.conf.
 * Throws INVALID_ARGUMENT when the CIDR is malformed or holds fewer than 11 addresses.
 */
export function clusterDnsIp(serviceCidr: string): string {
  const cidr = parseCidr(serviceCidr);
  try {
    return nthAddress(cidr, 10);
  } catch (err) {
    throw new IsthmusError(
      ErrorCodes.INVALID_ARGUMENT,
      `service CIDR ${serviceCidr} is too small for the cluster DNS address (its 10th address); use a prefix of /28 or shorter for IPv4`,
      { cause: err },
    );
  }
}

const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** One forward target: an address (with optional :port), [v6]:port, a resolv.conf path, or tls://… */
const UPSTREAM = /^[A-Za-z0-9._:/[\]-]+$/;

export interface CorefileOptions {
  /** The cluster's DNS domain (default "cluster.local"). */
  clusterDomain?: string;
  /**
   * Where names outside the cluster go: one or more `forward` targets separated by
   * spaces, e.g. "/etc/resolv.conf" or "192.0.2.53 192.0.2.54". Default: none, so no
   * `forward` line (the sandbox is offline) and CoreDNS answers only cluster names.
   */
  upstream?: string;
}

function checkDomain(domain: string): string {
  if (!DNS_NAME.test(domain)) {
    throw invalid(`cluster domain "${domain}" is not a lowercase DNS name; use e.g. cluster.local`);
  }
  return domain;
}

function checkUpstream(upstream: string): string[] {
  const targets = upstream.trim().split(/\s+/).filter((t) => t !== '');
  if (targets.length === 0 || targets.some((t) => !UPSTREAM.test(t))) {
    throw invalid(`upstream "${upstream}" is not a list of DNS servers; use addresses or a resolv.conf path separated by spaces, e.g. "192.0.2.53" or "/etc/resolv.conf"`);
  }
  return targets;
}

/**
 * The Corefile: one server block on :53 with errors, health on :8080, ready on :8181,
 * the `kubernetes` plugin for the cluster domain and reverse zones (pods insecure,
 * ttl 30), `forward` only when `upstream` is given, cache 30 and loadbalance.
 * No `loop` plugin: with no forward there is nothing to loop through.
 */
export function renderCorefile(options: CorefileOptions = {}): string {
  const domain = checkDomain(options.clusterDomain ?? 'cluster.local');
  const lines = [
    '.:53 {',
    '    errors',
    `    health :${String(DNS_HEALTH_PORT)}`,
    `    ready :${String(DNS_READY_PORT)}`,
    `    kubernetes ${domain} in-addr.arpa ip6.arpa {`,
    '        pods insecure',
    '        fallthrough in-addr.arpa ip6.arpa',
    '        ttl 30',
    '    }',
  ];
  if (options.upstream !== undefined) lines.push(`    forward . ${checkUpstream(options.upstream).join(' ')}`);
  lines.push('    cache 30', '    loadbalance', '}');
  return lines.join('\n') + '\n';
}

export type DnsObject = V1ServiceAccount | V1ClusterRole | V1ClusterRoleBinding | V1ConfigMap | V1Deployment | V1Service;

/** A Kubernetes `v1 List`, as `kubectl apply -f` takes it. */
export interface KubeList<T> {
  readonly apiVersion: 'v1';
  readonly kind: 'List';
  readonly items: T[];
}

export interface DnsManifestOptions extends CorefileOptions {
  /** The cluster's service CIDR; the kube-dns Service gets its 10th address. */
  serviceCidr: string;
  /** CoreDNS image (default DEFAULT_COREDNS_IMAGE, the pinned release). */
  image?: string;
  /** CoreDNS replicas (default 2). */
  replicas?: number;
}

/**
 * The objects of the cluster DNS, in apply order: ServiceAccount, ClusterRole and
 * ClusterRoleBinding `system:coredns`, ConfigMap `coredns` (key `Corefile`),
 * Deployment `coredns` and Service `kube-dns`, all in kube-system. Plain JSON
 * objects; the same input always gives the same output.
 */
export function dnsManifests(options: DnsManifestOptions): KubeList<DnsObject> {
  const dnsIp = clusterDnsIp(options.serviceCidr);
  const corefile = renderCorefile(options);
  const image = options.image ?? DEFAULT_COREDNS_IMAGE;
  if (image.trim() === '' || /\s/.test(image)) throw invalid(`CoreDNS image "${image}" is not an image reference; use e.g. ${DEFAULT_COREDNS_IMAGE}`);
  const replicas = options.replicas ?? 2;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 100) {
    throw invalid(`CoreDNS replicas must be an integer from 1 to 100, not ${String(replicas)}`);
  }
  const ns = DNS_NAMESPACE;
  const labels = { ...DNS_APP_LABEL };

  const serviceAccount: V1ServiceAccount = {
    apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: ns },
  };
  const clusterRole: V1ClusterRole = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'system:coredns', labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' } },
    rules: [
      { apiGroups: [''], resources: ['endpoints', 'services', 'pods', 'namespaces'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    ],
  };
  const binding: V1ClusterRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'system:coredns', labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
    subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: ns }],
  };
  const configMap: V1ConfigMap = {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'coredns', namespace: ns }, data: { Corefile: corefile },
  };
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'coredns', namespace: ns, labels: { ...labels } },
    spec: {
      replicas,
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      selector: { matchLabels: { ...labels } },
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          serviceAccountName: 'coredns',
          dnsPolicy: 'Default',
          tolerations: [
            { key: 'CriticalAddonsOnly', operator: 'Exists' },
            { key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' },
          ],
          containers: [{
            name: 'coredns',
            image,
            imagePullPolicy: 'IfNotPresent',
            args: ['-conf', '/etc/coredns/Corefile'],
            ports: [
              { name: 'dns', containerPort: 53, protocol: 'UDP' },
              { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
              { name: 'health', containerPort: DNS_HEALTH_PORT, protocol: 'TCP' },
            ],
            volumeMounts: [{ name: 'config-volume', mountPath: '/etc/coredns', readOnly: true }],
            livenessProbe: {
              httpGet: { path: '/health', port: DNS_HEALTH_PORT, scheme: 'HTTP' },
              initialDelaySeconds: 60, timeoutSeconds: 5, successThreshold: 1, failureThreshold: 5,
            },
            readinessProbe: {
              httpGet: { path: '/ready', port: DNS_READY_PORT, scheme: 'HTTP' },
              periodSeconds: 2, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3,
            },
            resources: { requests: { cpu: '100m', memory: '70Mi' }, limits: { memory: '170Mi' } },
            securityContext: {
              allowPrivilegeEscalation: false,
              capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
              readOnlyRootFilesystem: true,
            },
          }],
          volumes: [{ name: 'config-volume', configMap: { name: 'coredns', items: [{ key: 'Corefile', path: 'Corefile' }] } }],
        },
      },
    },
  };
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: 'kube-dns',
      namespace: ns,
      labels: { ...labels, 'kubernetes.io/name': 'CoreDNS', 'kubernetes.io/cluster-service': 'true' },
    },
    spec: {
      selector: { ...labels },
      clusterIP: dnsIp,
      clusterIPs: [dnsIp],
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    },
  };
  return { apiVersion: 'v1', kind: 'List', items: [serviceAccount, clusterRole, binding, configMap, deployment, service] };
}
