import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCA, generateKeyPair, issueCertificate, type CertKeyPair } from '../core/index.ts';
import type { ClusterPlan } from './plan.ts';

/**
 * One cluster's PKI, as a real cluster has it: its own CA, the apiserver's serving
 * certificate, client certificates for the admin and each control-plane component,
 * and the service-account signing key pair. Files are written 0600 (keys) under
 * `<clusterDir>/pki`.
 */
export interface ClusterPki {
  readonly dir: string;
  readonly caCert: string;
  readonly caKey: string;
  readonly apiserverCert: string;
  readonly apiserverKey: string;
  readonly saKey: string;
  readonly saPub: string;
  /** Client identities by name: admin, controller-manager, kube-proxy, the kubelet, and the apiserver's towards kubelets. */
  readonly clients: Readonly<Record<ClientName, { cert: string; key: string }>>;
}

export type ClientName = 'admin' | 'controller-manager' | 'kube-proxy' | 'kubelet' | 'apiserver-kubelet-client';

/** The common name the kubelet API accepts: only the apiserver's client certificate. */
export const APISERVER_KUBELET_CLIENT_CN = 'kube-apiserver-kubelet-client';

/** Each node's kubelet serving certificate (its name and address as SANs), by convention under `<clusterDir>/pki`. */
export function kubeletServingFiles(clusterDir: string, node: string): { cert: string; key: string } {
  return { cert: join(clusterDir, 'pki', `kubelet-serving-${node}.crt`), key: join(clusterDir, 'pki', `kubelet-serving-${node}.key`) };
}

const CLIENTS: Readonly<Record<ClientName, { cn: string; o: string[] }>> = {
  admin: { cn: 'isthmus-admin', o: ['system:masters'] },
  'controller-manager': { cn: 'system:kube-controller-manager', o: [] },
  'kube-proxy': { cn: 'system:kube-proxy', o: [] },
  kubelet: { cn: 'isthmus-sandbox-kubelet', o: ['system:masters'] },
  'apiserver-kubelet-client': { cn: APISERVER_KUBELET_CLIENT_CN, o: [] },
};

const VALID_DAYS = 365;

async function put(path: string, pem: string, secret: boolean): Promise<string> {
  await writeFile(path, pem, { mode: secret ? 0o600 : 0o644 });
  return path;
}

async function putPair(dir: string, name: string, pair: CertKeyPair): Promise<{ cert: string; key: string }> {
  return { cert: await put(join(dir, `${name}.crt`), pair.certPem, false), key: await put(join(dir, `${name}.key`), pair.keyPem, true) };
}

export async function createClusterPki(cluster: ClusterPlan, clusterDir: string): Promise<ClusterPki> {
  const dir = join(clusterDir, 'pki');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = createCA({ commonName: `isthmus-sandbox-${cluster.name}-ca`, validDays: VALID_DAYS });
  const caFiles = await putPair(dir, 'ca', ca);
  const apiserver = issueCertificate({
    ca,
    commonName: 'kube-apiserver',
    dnsNames: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost'],
    ipAddresses: ['127.0.0.1', cluster.hostIp, cluster.apiServiceIp],
    usages: ['server'],
    validDays: VALID_DAYS,
  });
  const apiserverFiles = await putPair(dir, 'apiserver', apiserver);
  const sa = generateKeyPair();
  const saKey = await put(join(dir, 'sa.key'), sa.keyPem, true);
  const saPub = await put(join(dir, 'sa.pub'), sa.publicKeyPem, false);
  const clients = {} as Record<ClientName, { cert: string; key: string }>;
  for (const [name, id] of Object.entries(CLIENTS) as [ClientName, { cn: string; o: string[] }][]) {
    const pair = issueCertificate({ ca, commonName: id.cn, organizations: id.o, usages: ['client'], validDays: VALID_DAYS });
    clients[name] = await putPair(dir, name, pair);
  }
  for (const n of cluster.nodes) {
    const serving = issueCertificate({ ca, commonName: n.name, dnsNames: [n.name], ipAddresses: [n.ip], usages: ['server'], validDays: VALID_DAYS });
    await putPair(dir, `kubelet-serving-${n.name}`, serving);
  }
  return {
    dir,
    caCert: caFiles.cert,
    caKey: caFiles.key,
    apiserverCert: apiserverFiles.cert,
    apiserverKey: apiserverFiles.key,
    saKey,
    saPub,
    clients,
  };
}
