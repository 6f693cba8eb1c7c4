import { join } from 'node:path';
import type { ClusterPlan, NodePlan } from './plan.ts';
import type { ClusterPki } from './pki.ts';

/**
 * Command lines of one cluster's control plane: a real etcd, kube-apiserver and
 * kube-controller-manager. etcd and the controller-manager listen on loopback;
 * the apiserver on the host's address on the cluster's node segment. Pure: the caller starts them.
 * Every path argument lives under `clusterDir`, which is how `down` finds them.
 */
export interface ComponentSpec {
  readonly name: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export function etcdSpec(c: ClusterPlan, clusterDir: string): ComponentSpec {
  const client = `http://127.0.0.1:${c.ports.etcdClient}`;
  const peer = `http://127.0.0.1:${c.ports.etcdPeer}`;
  return {
    name: 'etcd',
    args: [
      `--name=${c.name}`,
      `--data-dir=${join(clusterDir, 'etcd')}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${c.name}=${peer}`,
      '--initial-cluster-state=new',
      '--snapshot-count=10000',
      '--quota-backend-bytes=2147483648',
      '--log-level=warn',
    ],
  };
}

export function apiserverSpec(c: ClusterPlan, clusterDir: string, pki: ClusterPki): ComponentSpec {
  return {
    name: 'kube-apiserver',
    args: [
      `--etcd-servers=http://127.0.0.1:${c.ports.etcdClient}`,
      `--bind-address=${c.hostIp}`,
      `--advertise-address=${c.hostIp}`,
      `--secure-port=${c.ports.apiserver}`,
      `--cert-dir=${join(clusterDir, 'apiserver')}`,
      `--service-cluster-ip-range=${c.serviceCidr}`,
      `--tls-cert-file=${pki.apiserverCert}`,
      `--tls-private-key-file=${pki.apiserverKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--kubelet-client-certificate=${pki.clients['apiserver-kubelet-client'].cert}`,
      `--kubelet-client-key=${pki.clients['apiserver-kubelet-client'].key}`,
      `--kubelet-certificate-authority=${pki.caCert}`,
      '--kubelet-preferred-address-types=InternalIP',
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      '--endpoint-reconciler-type=lease',
      '--profiling=false',
      '--event-ttl=1h',
      '--v=1',
    ],
  };
}

export function controllerManagerSpec(c: ClusterPlan, clusterDir: string, pki: ClusterPki, kubeconfig: string): ComponentSpec {
  return {
    name: 'kube-controller-manager',
    args: [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${c.ports.controllerManager}`,
      `--cert-dir=${join(clusterDir, 'controller-manager')}`,
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki.saKey}`,
      `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      '--allocate-node-cidrs=true',
      `--cluster-cidr=${c.podCidr}`,
      `--node-cidr-mask-size=${c.nodeCidrMask}`,
      `--service-cluster-ip-range=${c.serviceCidr}`,
      '--controllers=*',
      '--v=1',
    ],
  };
}

/** The real kube-proxy in the cluster's mode (iptables by default), inside a node's namespace (run through `ip netns exec`). */
export function kubeProxySpec(c: ClusterPlan, n: NodePlan, kubeconfig: string, binary: string): ComponentSpec {
  return {
    name: 'kube-proxy',
    args: [
      'netns', 'exec', n.netns, binary,
      `--kubeconfig=${kubeconfig}`,
      `--hostname-override=${n.name}`,
      `--proxy-mode=${c.proxyMode ?? 'iptables'}`,
      // the flag sets the minimum for the nftables mode too
      ...(c.proxyMinSyncMs === undefined ? [] : [`--${c.proxyMode === 'ipvs' ? 'ipvs' : 'iptables'}-min-sync-period=${c.proxyMinSyncMs}ms`]),
      `--cluster-cidr=${c.podCidr}`,
      '--conntrack-max-per-core=0',
      '--conntrack-tcp-timeout-established=0',
      '--conntrack-tcp-timeout-close-wait=0',
      '--metrics-bind-address=127.0.0.1:10249',
      '--healthz-bind-address=127.0.0.1:10256',
      '--v=1',
    ],
  };
}
