import { PassThrough } from 'node:stream';
import { Exec, type V1Pod, type V1Status } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { waitFor, type Kube, type Obj } from './kube-apply.ts';

/**
 * Test pods of `verify` and `benchmark`: made in a namespace of the command's own (deleted
 * afterwards, which deletes the pods), waited for, and commands run in them through the
 * apiserver's exec, as `kubectl exec` does — so they work on any cluster the kubeconfig reaches.
 */
export const AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost:2.53';
/** Network tools (iperf3, curl, ping) in one image; the sandbox runs the machine's programs for it. */
export const NETSHOOT = 'nicolaka/netshoot:v0.13';

export interface PodSpec {
  readonly name: string;
  readonly namespace: string;
  readonly image: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** the container's args (the image's entrypoint runs them), or its command when `command` is set */
  readonly args?: readonly string[];
  readonly command?: readonly string[];
  /** the container's port; ready when it takes a TCP connection (none: ready when running) */
  readonly port?: number;
  /**
   * Ready when something listens on `port`, looked at with `ss` rather than by connecting:
   * for a server that a connection without a client behind it disturbs (iperf3 takes a
   * probe's connection as a test, and a client arriving meanwhile gets a reset).
   */
  readonly probeListening?: boolean;
  /** the node it runs on (scheduler bypassed) */
  readonly node?: string;
  /** in the node's network namespace */
  readonly hostNetwork?: boolean;
}

/** The Pod object. Pure. Its one container is named "main". */
export function podObject(p: PodSpec): Obj {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, labels: { 'app.kubernetes.io/part-of': 'isthmus', ...p.labels } },
    spec: {
      ...(p.node === undefined ? {} : { nodeName: p.node }),
      ...(p.hostNetwork === true ? { hostNetwork: true } : {}),
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: 'main', image: p.image,
        ...(p.command === undefined ? {} : { command: [...p.command] }),
        ...(p.args === undefined ? {} : { args: [...p.args] }),
        ...(p.port === undefined ? {} : { ports: [{ containerPort: p.port }], readinessProbe: { ...readinessCheck(p.port, p.probeListening === true), periodSeconds: 1 } }),
      }],
    },
  };
}

function readinessCheck(port: number, listening: boolean): Obj {
  return listening ? { exec: { command: ['sh', '-c', `ss -Hltn 'sport = :${port}' | grep -q .`] } } : { tcpSocket: { port } };
}

export function namespaceObject(name: string): Obj {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'app.kubernetes.io/part-of': 'isthmus' } } };
}

/** Waits until the pod is Ready; its IP and node. */
export async function podReady(kube: Kube, namespace: string, name: string, timeoutMs: number): Promise<{ ip: string; node: string }> {
  let last: V1Pod | undefined;
  return waitFor(`pod ${namespace}/${name} in ${kube.context} ready`, timeoutMs, async () => {
    last = await kube.core.readNamespacedPod({ name, namespace });
    return last.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true ? { ip: last.status.podIP ?? '', node: last.spec?.nodeName ?? '' } : undefined;
  }, 500, undefined, async () => last?.status?.containerStatuses?.map((c) => c.state?.waiting?.message ?? c.state?.waiting?.reason ?? c.state?.terminated?.reason ?? '').join(' ') ?? last?.status?.phase ?? '');
}

/**
 * Runs `command` in the pod and calls `onLine` with each line of its stdout as it arrives
 * (the time of arrival is the caller's clock, so no clock of the cluster's is trusted).
 * Resolves with the whole stdout once the command exits 0; COMMAND_FAILED with its stderr
 * otherwise. `signal` closes the stream (the command itself ends by its own bound).
 */
export async function execIn(kube: Kube, namespace: string, pod: string, command: readonly string[], onLine?: (line: string) => void, signal?: AbortSignal): Promise<string> {
  const out = new PassThrough();
  const err = new PassThrough();
  let text = '';
  let partial = '';
  let errText = '';
  out.on('data', (d: Buffer) => {
    text += d.toString();
    if (onLine === undefined) return;
    partial += d.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
  err.on('data', (d: Buffer) => (errText += d.toString()));
  const status = await new Promise<V1Status | undefined>((resolve, reject) => {
    new Exec(kube.kc).exec(namespace, pod, 'main', [...command], out, err, null, false, resolve).then((ws) => {
      signal?.addEventListener('abort', () => { ws.close(); resolve(undefined); }, { once: true });
    }).catch(reject);
  });
  // the last frames of stdout may land after the status
  await new Promise((r) => setTimeout(r, 200));
  if (status === undefined) return text;
  if (status.status !== 'Success') throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `${command.join(' ')} in ${kube.context} ${namespace}/${pod}: ${errText.trim() || status.message || 'failed'}`);
  return text;
}
