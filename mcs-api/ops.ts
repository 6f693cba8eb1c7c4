import { CustomObjectsApi, dumpYaml, type KubeConfig, type V1Condition } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, messageOf } from '../core/index.ts';
import { isAlreadyExists, isNotFound } from './kube-errors.ts';
import { MCS_GROUP, MCS_VERSION, type ServiceExport, type ServiceImport } from './types.ts';

/**
 * What the `isthmus export / unexport / show exports|imports` verbs do, so the CLI stays a
 * parser and a printer. Names are RFC-1123 labels (INVALID_ARGUMENT otherwise).
 */
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function checkName(what: string, v: string): void {
  if (v.length === 0 || v.length > 63 || !LABEL.test(v)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${what} ${JSON.stringify(v)} is not a valid name: use 1-63 lower-case letters, digits and '-'`);
  }
}

const ref = (plural: string) => ({ group: MCS_GROUP, version: MCS_VERSION, plural });

function apiError(err: unknown, what: string): IsthmusError {
  if (isNotFound(err)) {
    return new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `${what}: the MCS CRDs are not installed in this cluster: kubectl apply -f deploy/crds/`, { cause: err });
  }
  return new IsthmusError(ErrorCodes.UNAVAILABLE, `${what}: ${messageOf(err)}`, { cause: err });
}

/** Creates the ServiceExport (no change when it exists). Returns true when it was created. */
export async function exportService(kc: KubeConfig, namespace: string, name: string): Promise<boolean> {
  const objects = kc.makeApiClient(CustomObjectsApi);
  try {
    await objects.createNamespacedCustomObject({
      ...ref('serviceexports'), namespace,
      body: { apiVersion: `${MCS_GROUP}/${MCS_VERSION}`, kind: 'ServiceExport', metadata: { name, namespace } },
    });
    return true;
  } catch (err) {
    if (isAlreadyExists(err)) return false;
    if (isNotFound(err)) {
      throw new IsthmusError(ErrorCodes.NOT_FOUND, `cannot export ${namespace}/${name}: namespace ${namespace} does not exist, or the MCS CRDs are not installed (kubectl apply -f deploy/crds/)`, { cause: err });
    }
    throw apiError(err, `cannot export ${namespace}/${name}`);
  }
}

/** Deletes the ServiceExport; NOT_FOUND when it was not exported. */
export async function unexportService(kc: KubeConfig, namespace: string, name: string): Promise<void> {
  const objects = kc.makeApiClient(CustomObjectsApi);
  try {
    await objects.deleteNamespacedCustomObject({ ...ref('serviceexports'), namespace, name });
  } catch (err) {
    if (isNotFound(err)) throw new IsthmusError(ErrorCodes.NOT_FOUND, `service ${namespace}/${name} is not exported (no ServiceExport ${namespace}/${name})`, { cause: err });
    throw apiError(err, `cannot unexport ${namespace}/${name}`);
  }
}

export async function getExport(kc: KubeConfig, namespace: string, name: string): Promise<ServiceExport | undefined> {
  try {
    return (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ ...ref('serviceexports'), namespace, name })) as ServiceExport;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw apiError(err, `cannot read ServiceExport ${namespace}/${name}`);
  }
}

/**
 * The outcome --wait waits for: 'ready' (Ready=True), 'invalid' (Valid=False: it will not
 * become ready without a change), or undefined (not decided yet).
 */
export function exportOutcome(se: ServiceExport | undefined): { state: 'ready' | 'invalid'; message: string } | undefined {
  const c = (type: string): V1Condition | undefined => se?.status?.conditions?.find((x) => x.type === type);
  if (c('Valid')?.status === 'False') return { state: 'invalid', message: `${c('Valid')?.reason}: ${c('Valid')?.message}` };
  if (c('Ready')?.status === 'True') return { state: 'ready', message: c('Conflict')?.status === 'True' ? `exported, with a conflict: ${c('Conflict')?.reason} (${c('Conflict')?.message})` : 'exported' };
  return undefined;
}

export async function listExports(kc: KubeConfig, namespace: string | undefined): Promise<ServiceExport[]> {
  return list<ServiceExport>(kc, 'serviceexports', namespace);
}

export async function listImports(kc: KubeConfig, namespace: string | undefined): Promise<ServiceImport[]> {
  return list<ServiceImport>(kc, 'serviceimports', namespace);
}

async function list<T>(kc: KubeConfig, plural: string, namespace: string | undefined): Promise<T[]> {
  const objects = kc.makeApiClient(CustomObjectsApi);
  try {
    const res = (namespace === undefined ? await objects.listClusterCustomObject(ref(plural)) : await objects.listNamespacedCustomObject({ ...ref(plural), namespace })) as { items?: T[] };
    return res.items ?? [];
  } catch (err) {
    throw apiError(err, `cannot list ${plural}`);
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

const cond = (se: ServiceExport, type: string): string => {
  const c = se.status?.conditions?.find((x) => x.type === type);
  return c === undefined ? '-' : `${c.status}${c.status === 'True' && type !== 'Conflict' ? '' : `(${c.reason})`}`;
};

export type OutputFormat = 'table' | 'json' | 'yaml';

export function formatExports(items: readonly ServiceExport[], format: OutputFormat): string {
  if (format === 'json') return JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2) + '\n';
  if (format === 'yaml') return dumpYaml({ apiVersion: 'v1', kind: 'List', items });
  const rows = [['NAMESPACE', 'NAME', 'VALID', 'READY', 'CONFLICT']];
  for (const se of items) rows.push([se.metadata?.namespace ?? '', se.metadata?.name ?? '', cond(se, 'Valid'), cond(se, 'Ready'), cond(se, 'Conflict')]);
  return table(rows);
}

export function formatImports(items: readonly ServiceImport[], format: OutputFormat): string {
  if (format === 'json') return JSON.stringify({ apiVersion: 'v1', kind: 'List', items }, null, 2) + '\n';
  if (format === 'yaml') return dumpYaml({ apiVersion: 'v1', kind: 'List', items });
  const rows = [['NAMESPACE', 'NAME', 'TYPE', 'IPS', 'PORTS', 'CLUSTERS']];
  for (const si of items) {
    rows.push([
      si.metadata?.namespace ?? '', si.metadata?.name ?? '', si.spec?.type ?? '', (si.spec?.ips ?? []).join(',') || '-',
      (si.spec?.ports ?? []).map((p) => `${p.name ? `${p.name}:` : ''}${p.port}/${p.protocol ?? 'TCP'}`).join(',') || '-',
      (si.status?.clusters ?? []).map((c) => c.cluster).join(',') || '-',
    ]);
  }
  return table(rows);
}
