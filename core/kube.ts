import { KubeConfig, type CustomObjectsApi } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';
import { kubeconfigSource, type LoadKubeConfigOptions } from './kube-lite.ts';

export type { LoadKubeConfigOptions } from './kube-lite.ts';

/**
 * Loads a kubeconfig and selects a context, failing with a message that says what to
 * fix: NOT_FOUND when the file or the named context does not exist, INVALID_CONFIG
 * when the file cannot be parsed or its context lacks a cluster or user. Unlike
 * client-node's loadFromDefault, never falls back to an unauthenticated localhost:8080.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  const src = kubeconfigSource(options);
  const source = src.source;
  if (src.kind === 'in-cluster') load(kc, source, () => kc.loadFromCluster());
  else if (options.kubeconfig === undefined && process.env['KUBECONFIG']) load(kc, source, () => kc.loadFromDefault()); // merges the files
  else load(kc, source, () => kc.loadFromFile(src.files[0] ?? ''));

  const available = kc.getContexts().map((c) => c.name);
  if (available.length === 0) {
    throw new IsthmusError(
      ErrorCodes.INVALID_CONFIG,
      `kubeconfig ${source} defines no contexts; check that it is a kubeconfig file (kubectl config get-contexts --kubeconfig ${source})`,
      { context: { kubeconfig: source } },
    );
  }
  const list = `available: ${available.join(', ')}`;
  if (options.context !== undefined) {
    if (kc.getContextObject(options.context) === null) {
      throw new IsthmusError(
        ErrorCodes.NOT_FOUND,
        `context "${options.context}" is not in kubeconfig ${source} (${list}); pass one of those with --context`,
        { context: { kubeconfig: source, context: options.context } },
      );
    }
    kc.setCurrentContext(options.context);
  }
  const current = kc.getCurrentContext();
  const ctx = current ? kc.getContextObject(current) : null;
  if (ctx === null) {
    const why = current ? `its current-context "${current}" is not defined` : 'it sets no current-context';
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: ${why} (${list}); pass --context`, {
      context: { kubeconfig: source },
    });
  }
  if (kc.getCurrentCluster() === null) {
    throw new IsthmusError(
      ErrorCodes.INVALID_CONFIG,
      `kubeconfig ${source}: context "${ctx.name}" names cluster "${ctx.cluster}", which is not defined there; fix the file or pick another --context`,
      { context: { kubeconfig: source, context: ctx.name } },
    );
  }
  if (ctx.user && kc.getCurrentUser() === null) {
    throw new IsthmusError(
      ErrorCodes.INVALID_CONFIG,
      `kubeconfig ${source}: context "${ctx.name}" names user "${ctx.user}", which is not defined there; fix the file or pick another --context`,
      { context: { kubeconfig: source, context: ctx.name } },
    );
  }
  return kc;
}


function load(kc: KubeConfig, source: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    throw new IsthmusError(
      ErrorCodes.INVALID_CONFIG,
      `kubeconfig ${source} cannot be read: ${messageOf(err).split('\n')[0] ?? ''}; check that it is a valid kubeconfig YAML file`,
      { cause: err, context: { kubeconfig: source } },
    );
  }
}

/** One object of one of our CRDs, named after its node. */
export interface NodeObjectRef {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

/**
 * Writes the status of a per-node object of ours (a Gateway, a RouteAgent): created with
 * `spec.nodeName` when missing, then its status subresource replaced.
 */
export async function writeNodeObjectStatus(objects: CustomObjectsApi, ref: NodeObjectRef, status: object): Promise<void> {
  const { kind, ...path } = ref;
  let current: Record<string, unknown>;
  try {
    current = (await objects.getNamespacedCustomObject(path)) as Record<string, unknown>;
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    current = (await objects.createNamespacedCustomObject({
      group: ref.group, version: ref.version, namespace: ref.namespace, plural: ref.plural,
      body: { apiVersion: `${ref.group}/${ref.version}`, kind, metadata: { name: ref.name, namespace: ref.namespace }, spec: { nodeName: ref.name } },
    })) as Record<string, unknown>;
  }
  await objects.replaceNamespacedCustomObjectStatus({ ...path, body: { ...current, status } });
}
