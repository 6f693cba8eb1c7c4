import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { GatewayStatus } from './status.ts';

/**
 * Writes a gateway's `Gateway` resource (isthmus.dev/v1alpha1, named after the gateway
 * node) in the local cluster: created with its spec when missing, then its status
 * subresource replaced. The status holds no secret (see status.ts).
 */
export async function writeGatewayStatus(objects: CustomObjectsApi, namespace: string, name: string, status: GatewayStatus): Promise<void> {
  const ref = { group: 'isthmus.dev', version: 'v1alpha1', namespace, plural: 'gateways', name };
  let current: Record<string, unknown>;
  try {
    current = (await objects.getNamespacedCustomObject(ref)) as Record<string, unknown>;
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    current = (await objects.createNamespacedCustomObject({
      group: ref.group, version: ref.version, namespace, plural: ref.plural,
      body: { apiVersion: 'isthmus.dev/v1alpha1', kind: 'Gateway', metadata: { name, namespace }, spec: { nodeName: name } },
    })) as Record<string, unknown>;
  }
  await objects.replaceNamespacedCustomObjectStatus({ ...ref, body: { ...current, status } });
}
