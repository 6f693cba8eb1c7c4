import { CoreV1Api, CustomObjectsApi, loadAllYaml, type KubeConfig } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, messageOf } from '../core/index.ts';
import { validatePolicySpec, type PolicyProtocol } from '../core/broker-api/index.ts';
import { publishedClusterLabels, type ClusterPropertyLike } from './cluster-labels.ts';
import { AUTHORS_ANNOTATION, evaluate, resolve, type NamespaceInfo, type PolicyInput, type Verdict } from './evaluate.ts';

/**
 * What the `isthmus policy` verbs do, against the clusters' apiservers (one kubeconfig
 * context per member cluster, named after its cluster id).
 *
 * - `testFlow`: gathers every cluster's ClusterSetNetworkPolicies, the source pod and
 *   namespace (labels) and the destination's, and answers with evaluate()'s verdict and
 *   why — what the nodes of the destination cluster enforce for that flow.
 * - `applyPolicies`: validates each ClusterSetNetworkPolicy of a manifest (errors name the
 *   object and the field) and creates or replaces it; nothing is applied unless all are valid.
 */
export const GROUP = 'isthmus.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'clustersetnetworkpolicies';

export interface PodRef {
  readonly cluster: string;
  readonly namespace: string;
  readonly pod: string;
  readonly port?: number;
}

/** "c2/ns/pod" or, with `withPort`, "c1/ns/pod:8080". */
export function parsePodRef(text: string, withPort: boolean): PodRef {
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+)\/([a-z0-9.-]+)(?::(\d+))?$/.exec(text);
  const port = m?.[4] === undefined ? undefined : Number(m[4]);
  if (m === null || (withPort && (port === undefined || port < 1 || port > 65535)) || (!withPort && port !== undefined)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${JSON.stringify(text)} is not ${withPort ? 'CLUSTER/NAMESPACE/POD:PORT (port 1-65535)' : 'CLUSTER/NAMESPACE/POD'}`);
  }
  return { cluster: m[1] as string, namespace: m[2] as string, pod: m[3] as string, ...(port === undefined ? {} : { port }) };
}

type Obj = { metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: unknown };

function forContext(base: KubeConfig, context: string): KubeConfig {
  if (!base.getContexts().some((c) => c.name === context)) {
    throw new IsthmusError(ErrorCodes.NOT_FOUND, `the kubeconfig has no context ${JSON.stringify(context)}: name each member cluster's context after its cluster id`);
  }
  const kc = Object.assign(Object.create(Object.getPrototypeOf(base) as object) as KubeConfig, base);
  kc.setCurrentContext(context);
  return kc;
}

async function get<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    const code = (err as { code?: number }).code;
    throw new IsthmusError(code === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.UNAVAILABLE, `${what}: ${code === 404 ? 'not found' : messageOf(err)}`, { cause: err });
  }
}

export interface FlowAnswer {
  readonly verdict: Verdict;
  /** Policies that could not be used, with why. */
  readonly invalid: readonly string[];
}

export async function testFlow(base: KubeConfig, from: PodRef, to: PodRef, protocol: PolicyProtocol): Promise<FlowAnswer> {
  const invalid: string[] = [];
  const policies: PolicyInput[] = [];
  const members = base.getContexts().map((c) => c.name).sort();
  for (const cluster of members) {
    const list = await get(`listing ClusterSetNetworkPolicies in ${cluster}`, () => forContext(base, cluster).makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }))
      .catch((err: unknown) => {
        invalid.push(`${cluster}: ${messageOf(err)}`);
        return { items: [] };
      });
    for (const o of ((list as { items?: Obj[] }).items ?? [])) {
      const ns = o.metadata?.namespace ?? '';
      const name = o.metadata?.name ?? '';
      try {
        policies.push({ key: `${cluster}/${ns}/${name}`, cluster, namespace: ns, name, spec: validatePolicySpec(o.spec) });
      } catch (err) {
        invalid.push(`${cluster}/${ns}/${name}: ${messageOf(err)}`);
      }
    }
  }
  const src = forContext(base, from.cluster).makeApiClient(CoreV1Api);
  const dst = forContext(base, to.cluster).makeApiClient(CoreV1Api);
  const srcPod = await get(`pod ${from.namespace}/${from.pod} in ${from.cluster}`, () => src.readNamespacedPod({ namespace: from.namespace, name: from.pod }));
  const srcNs = await get(`namespace ${from.namespace} in ${from.cluster}`, () => src.readNamespace({ name: from.namespace }));
  const dstPod = await get(`pod ${to.namespace}/${to.pod} in ${to.cluster}`, () => dst.readNamespacedPod({ namespace: to.namespace, name: to.pod }));
  const namespaces: NamespaceInfo[] = ((await get(`namespaces of ${to.cluster}`, () => dst.listNamespace())).items as Obj[]).map((n) => {
    const authors = n.metadata?.annotations?.[AUTHORS_ANNOTATION];
    return { name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {}, authors: authors === undefined ? undefined : authors.split(',').map((s) => s.trim()).filter((s) => s !== '') };
  });
  // each member's labels as its policy controller publishes them: from its ClusterProperties
  const clusterLabels = new Map<string, Readonly<Record<string, string>>>();
  for (const m of members) {
    const props = await forContext(base, m).makeApiClient(CustomObjectsApi).listClusterCustomObject({ group: 'about.k8s.io', version: 'v1alpha1', plural: 'clusterproperties' })
      .then((l) => ((l as { items?: ClusterPropertyLike[] }).items ?? []), (err: unknown) => {
        invalid.push(`${m}: ClusterProperties not read (${messageOf(err)}); only its id label is used`);
        return [];
      });
    clusterLabels.set(m, publishedClusterLabels(m, props).labels);
  }
  const resolved = resolve({ cluster: to.cluster, clusterLabels, namespaces, policies });
  const verdict = evaluate(resolved, {
    source: { cluster: from.cluster, namespace: from.namespace, namespaceLabels: srcNs.metadata?.labels ?? {}, pod: from.pod, labels: srcPod.metadata?.labels ?? {} },
    destination: { namespace: to.namespace, pod: to.pod, labels: dstPod.metadata?.labels ?? {} },
    protocol,
    port: to.port ?? 0,
  });
  return { verdict, invalid };
}

/** The ClusterSetNetworkPolicies of a manifest (YAML or JSON, several documents), each validated. */
export function policiesOfManifest(text: string, defaultNamespace: string): { namespace: string; name: string; body: object }[] {
  let docs: unknown[];
  try {
    docs = loadAllYaml(text) as unknown[];
  } catch (err) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `the manifest is not YAML or JSON: ${messageOf(err)}`);
  }
  const out: { namespace: string; name: string; body: object }[] = [];
  docs.filter((d) => d !== null && d !== undefined).forEach((d, i) => {
    const o = d as Obj & { apiVersion?: string; kind?: string };
    const where = `document ${i + 1}${o.metadata?.name === undefined ? '' : ` (${o.metadata.name})`}`;
    if (o.kind !== 'ClusterSetNetworkPolicy' || o.apiVersion !== `${GROUP}/${VERSION}`) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${where}: expected apiVersion ${GROUP}/${VERSION} kind ClusterSetNetworkPolicy, got ${o.apiVersion ?? '?'} ${o.kind ?? '?'}`);
    }
    const name = o.metadata?.name;
    if (name === undefined || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${where}: metadata.name must be a lower-case object name`);
    try {
      validatePolicySpec(o.spec);
    } catch (err) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${where}: ${messageOf(err)}`, { cause: err });
    }
    const namespace = o.metadata?.namespace ?? defaultNamespace;
    out.push({ namespace, name, body: { ...o, metadata: { ...o.metadata, namespace } } });
  });
  if (out.length === 0) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'the manifest holds no ClusterSetNetworkPolicy');
  return out;
}

/** Creates or replaces each policy; returns "created"/"configured" per policy. */
export async function applyPolicies(kc: KubeConfig, policies: readonly { namespace: string; name: string; body: object }[]): Promise<string[]> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const done: string[] = [];
  for (const p of policies) {
    const ref = { group: GROUP, version: VERSION, namespace: p.namespace, plural: PLURAL };
    const existing = await api.getNamespacedCustomObject({ ...ref, name: p.name }).catch((err: unknown) => {
      if ((err as { code?: number }).code === 404) return undefined;
      throw new IsthmusError(ErrorCodes.UNAVAILABLE, `reading ${p.namespace}/${p.name}: ${messageOf(err)} (is the ClusterSetNetworkPolicy CRD installed? kubectl apply -f deploy/crds/)`, { cause: err });
    }) as Obj | undefined;
    if (existing === undefined) {
      await api.createNamespacedCustomObject({ ...ref, body: p.body });
      done.push(`clustersetnetworkpolicy ${p.namespace}/${p.name} created`);
    } else {
      const body = { ...p.body, metadata: { ...(p.body as Obj).metadata, resourceVersion: (existing.metadata as { resourceVersion?: string } | undefined)?.resourceVersion } };
      await api.replaceNamespacedCustomObject({ ...ref, name: p.name, body });
      done.push(`clustersetnetworkpolicy ${p.namespace}/${p.name} configured`);
    }
  }
  return done;
}
