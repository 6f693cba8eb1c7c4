// The public face of mcs-api/: the MCS controllers, the CRDs and the pure merge.
export { ExportController, type ExportControllerOptions, type Publisher } from './export-controller.ts';
export { ImportController, type ImportControllerOptions } from './import-controller.ts';
export { CorednsKeeper, type CorednsKeeperOptions } from './coredns.ts';
export { ExportIndex } from './export-index.ts';
export { mergeExports, derivedServiceName, type MergeResult, type ImportSpec, type ConflictReason } from './merge.ts';
export { resolveClusterId, CLUSTER_ID_PROPERTY, CLUSTERSET_PROPERTY } from './cluster-id.ts';
export { mcsCrds } from './crds.ts';
export { corefileWithStanza } from './corefile.ts';
export { MCS_GROUP, MCS_VERSION, type ServiceExport, type ServiceImport, type ClusterProperty } from './types.ts';
export { apiCode } from './kube-errors.ts';
export { McsMetrics } from './metrics.ts';
