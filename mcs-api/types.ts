import type { KubernetesObject, V1Condition } from '@kubernetes/client-node';

/**
 * The MCS API objects as this controller reads and writes them (multicluster.x-k8s.io
 * v1beta1 and about.k8s.io v1alpha1), and the label names KEP-1645 fixes.
 */
export const MCS_GROUP = 'multicluster.x-k8s.io';
export const MCS_VERSION = 'v1beta1';
export const LABEL_SERVICE_NAME = 'multicluster.kubernetes.io/service-name';
export const LABEL_SOURCE_CLUSTER = 'multicluster.kubernetes.io/source-cluster';
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const LABEL_K8S_SERVICE_NAME = 'kubernetes.io/service-name';
/** Our value of endpointslice.kubernetes.io/managed-by (never the default controller's). */
export const MANAGED_BY = 'mcs-controller.isthmus.dev';
/** On the derived Service: the ServiceImport it carries the clusterset IPs of. */
export const LABEL_DERIVED_FROM = 'isthmus.dev/serviceimport';

export interface ServiceExport extends KubernetesObject {
  spec?: { exportedLabels?: Record<string, string>; exportedAnnotations?: Record<string, string> };
  status?: { conditions?: V1Condition[] };
}

export interface ServiceImportPort {
  name?: string;
  protocol?: string;
  port: number;
  appProtocol?: string;
}

export interface ServiceImportSpec {
  type: 'ClusterSetIP' | 'Headless';
  ports: ServiceImportPort[];
  ips?: string[];
  ipFamilies?: string[];
  sessionAffinity?: string;
  sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  internalTrafficPolicy?: string;
  trafficDistribution?: string;
}

export interface ServiceImport extends KubernetesObject {
  spec?: ServiceImportSpec;
  status?: { clusters?: { cluster: string }[]; conditions?: V1Condition[] };
}

export interface ClusterProperty extends KubernetesObject {
  spec?: { value?: string };
}
