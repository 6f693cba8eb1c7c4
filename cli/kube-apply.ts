import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ApiException, AppsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy, VersionApi, loadAllYaml, type KubeConfig, type KubernetesObject,
} from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, createLogger, messageOf } from '../core/index.ts';
import { BrokerClient } from '../core/broker-api/index.ts';
import { loadKubeConfig } from '../core/k8s.ts';
import { projectRoot } from '../sandbox/versions.ts';

/**
 * The Kubernetes side of `broker deploy`, `join` and `uninstall`: objects applied with
 * server-side apply (field manager "isthmus", forced: re-running is how a cluster is
 * upgraded, and what we own is ours), read, deleted; manifests read from deploy/.
 * Errors say what to do: an apiserver that does not answer, a missing right.
 */
export type Obj = KubernetesObject & { spec?: Record<string, unknown>; data?: Record<string, string>; stringData?: Record<string, string>; [k: string]: unknown };

export const FIELD_MANAGER = 'isthmus';

export class Kube {
  readonly kc: KubeConfig;
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly context: string;
  readonly server: string;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.context = kc.getCurrentContext();
    this.server = kc.getCurrentCluster()?.server ?? '?';
  }

  static load(kubeconfig: string | undefined, context: string | undefined): Kube {
    return new Kube(loadKubeConfig({ ...(kubeconfig === undefined ? {} : { kubeconfig }), ...(context === undefined ? {} : { context }) }));
  }

  /** The apiserver's version ("v1.36.3"), or UNAVAILABLE saying which server did not answer. */
  async version(): Promise<{ gitVersion: string; minor: number }> {
    try {
      const v = await this.kc.makeApiClient(VersionApi).getCode();
      return { gitVersion: v.gitVersion, minor: Number.parseInt(v.minor, 10) };
    } catch (err) {
      throw this.wrap(err, 'read the apiserver version');
    }
  }

  /** Server-side apply of one object. */
  async apply(obj: Obj): Promise<Obj> {
    try {
      return await this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply) as Obj;
    } catch (err) {
      throw this.wrap(err, `apply ${obj.kind ?? '?'} ${obj.metadata?.namespace === undefined ? '' : `${obj.metadata.namespace}/`}${obj.metadata?.name ?? '?'}`);
    }
  }

  /** The object, or undefined when it does not exist. */
  async read<T extends Obj = Obj>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.objects.read({ apiVersion, kind, metadata: { name, ...(namespace === undefined ? {} : { namespace }) } }) as T;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw this.wrap(err, `read ${kind} ${name}`);
    }
  }

  /** Deletes the object; true when it existed. */
  async remove(apiVersion: string, kind: string, name: string, namespace?: string): Promise<boolean> {
    try {
      await this.objects.delete({ apiVersion, kind, metadata: { name, ...(namespace === undefined ? {} : { namespace }) } }, undefined, undefined, undefined, undefined, 'Background');
      return true;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return false;
      throw this.wrap(err, `delete ${kind} ${name}`);
    }
  }

  async list<T extends Obj = Obj>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]> {
    try {
      const res = await this.objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
      return res.items as T[];
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return [];
      throw this.wrap(err, `list ${kind}`);
    }
  }

  /** An IsthmusError that says what failed and what to do. */
  wrap(err: unknown, what: string): IsthmusError {
    if (err instanceof IsthmusError) return err;
    const where = `context ${this.context} (${this.server})`;
    if (err instanceof ApiException) {
      const body = typeof err.body === 'string' ? err.body : JSON.stringify(err.body ?? '');
      const msg = /"message":"((?:[^"\\]|\\.)*)"/.exec(body)?.[1] ?? body.slice(0, 300);
      if (err.code === 401) return new IsthmusError(ErrorCodes.UNAUTHENTICATED, `cannot ${what} in ${where}: the apiserver does not accept these credentials; refresh them (kubectl --context ${this.context} get ns)`, { cause: err });
      if (err.code === 403) return new IsthmusError(ErrorCodes.PERMISSION_DENIED, `cannot ${what} in ${where}: ${msg}; run as a cluster admin (Isthmus installs CRDs, RBAC and DaemonSets)`, { cause: err });
      return new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `cannot ${what} in ${where}: HTTP ${err.code}: ${msg}`, { cause: err });
    }
    return new IsthmusError(ErrorCodes.UNAVAILABLE, `cannot ${what}: the apiserver of ${where} does not answer (${messageOf(err)}); check --context and that the cluster is up`, { cause: err });
  }
}

/** The objects of a manifest under deploy/ (YAML with several documents, or JSON). */
export async function manifest(relative: string): Promise<Obj[]> {
  const text = await readFile(join(projectRoot(), 'deploy', relative), 'utf8');
  if (relative.endsWith('.json')) return [JSON.parse(text) as Obj];
  return (loadAllYaml(text) as (Obj | null)[]).filter((o): o is Obj => o !== null);
}

/** The object of `kind`/`name` in `objects`, or INTERNAL (a manifest of deploy/ changed shape). */
export function pick(objects: readonly Obj[], kind: string, name: string): Obj {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (o === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, `deploy/ has no ${kind} ${name}: the checkout is incomplete`);
  return structuredClone(o);
}

/**
 * Polls `check` every `everyMs` until it returns a value, or TIMEOUT with `what` and the last
 * state (from `state`, else the last error `check` threw, so the reason is never lost).
 */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>, everyMs = 1000, onState?: (s: string) => void, state?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const v = await check().catch((err: unknown) => {
      if (state === undefined) last = messageOf(err);
      return undefined;
    });
    if (v !== undefined) return v;
    if (state !== undefined) {
      const s = await state().catch((err: unknown) => messageOf(err));
      if (s !== last) {
        last = s;
        onState?.(s);
      }
    }
    if (Date.now() > deadline) throw new IsthmusError(ErrorCodes.TIMEOUT, `${what} did not happen within ${Math.round(timeoutMs / 1000)} s${last === '' ? '' : ` (last: ${last})`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A Secret's value as text ('' when absent). */
export function secretText(s: Obj | undefined, key: string): string {
  return Buffer.from(s?.data?.[key] ?? '', 'base64').toString('utf8');
}

/** An Opaque Secret of ours holding `files`. */
export function opaqueSecret(name: string, namespace: string, files: Record<string, string>): Obj {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'isthmus' } },
    data: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

/**
 * A broker client with the cluster's own credentials, as its gateway has them (ConfigMap
 * isthmus-gateway's BROKER: every broker address, Secret isthmus-broker-client), or
 * undefined when the cluster has not joined. `only`: dial just this one of the addresses.
 */
export async function clusterBrokerClient(kube: Kube, component: string, retryForMs?: number, only?: string): Promise<{ client: BrokerClient; clusterId: string; addresses: readonly string[] } | undefined> {
  const secret = await kube.read('v1', 'Secret', 'isthmus-broker-client', 'isthmus-system');
  const cm = await kube.read('v1', 'ConfigMap', 'isthmus-gateway', 'isthmus-system');
  const address = only ?? cm?.data?.['BROKER'];
  if (secret === undefined || secretText(secret, 'tls.crt') === '' || address === undefined) return undefined;
  const client = new BrokerClient({
    address, logger: createLogger({ component, level: 'silent' }), ...(retryForMs === undefined ? {} : { retryForMs }),
    credentials: async () => ({ caPem: secretText(secret, 'ca.crt'), certPem: secretText(secret, 'tls.crt'), keyPem: secretText(secret, 'tls.key') }),
  });
  return { client, clusterId: cm?.data?.['CLUSTER_ID'] ?? '', addresses: client.addresses };
}
