import type { CustomObjectsApi } from '@kubernetes/client-node';
import { writeNodeObjectStatus } from '../core/k8s.ts';
import type { GatewayStatus } from './status.ts';

/**
 * Writes a gateway's `Gateway` resource (isthmus.dev/v1alpha1, named after the gateway
 * node) in the local cluster: created with its spec when missing, then its status
 * subresource replaced. The status holds no secret (see status.ts).
 */
export async function writeGatewayStatus(objects: CustomObjectsApi, namespace: string, name: string, status: GatewayStatus): Promise<void> {
  await writeNodeObjectStatus(objects, { group: 'isthmus.dev', version: 'v1alpha1', plural: 'gateways', kind: 'Gateway', namespace, name }, status);
}
