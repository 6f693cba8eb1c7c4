import type { V1ContainerState, V1ContainerStateTerminated, V1Pod } from '@kubernetes/client-node';
import type { ContainerExit, ContainerRecord } from './records.ts';

/**
 * The parts of a pod's status the sandbox kubelet derives from its records, as a
 * kubelet does: each container's state, the pod's phase, whether an ended container is
 * restarted and after what backoff, and the pod's hostname. Pure.
 */

/** The pod's hostname, as a kubelet sets it: spec.hostname, else the pod's name, at most 63 characters. */
export function podHostname(pod: V1Pod): string {
  const h = pod.spec?.hostname ?? pod.metadata?.name ?? 'pod';
  return h.slice(0, 63).replace(/[-.]+$/, '');
}

export function terminatedState(e: ContainerExit): V1ContainerStateTerminated {
  return {
    exitCode: e.code,
    reason: e.reason,
    finishedAt: new Date(e.at),
    ...(e.startedAt === undefined ? {} : { startedAt: new Date(e.startedAt) }),
    ...(e.message === undefined ? {} : { message: e.message }),
  };
}

/** A container's state for its status: running, terminated (not to be restarted), or waiting to (re)start. */
export function containerState(c: ContainerRecord, running: boolean, startedAt: Date): V1ContainerState {
  if (running) return { running: { startedAt } };
  if (c.terminated !== undefined) return { terminated: terminatedState(c.terminated) };
  if (c.lastExit === undefined) return { waiting: { reason: 'ContainerCreating' } };
  return { waiting: { reason: 'CrashLoopBackOff', message: `back-off restarting the container (last exit ${c.lastExit.code}${c.lastExit.message === undefined ? '' : `: ${c.lastExit.message}`})` } };
}

/**
 * Pending until every init container has exited 0 (Failed when one ended for good with
 * another code); then Running while any container runs or will be restarted; once every
 * container has ended for good, Succeeded when all exited 0, else Failed.
 */
export function podPhase(containers: readonly Pick<ContainerRecord, 'terminated'>[], inits: readonly Pick<ContainerRecord, 'terminated'>[] = []): 'Pending' | 'Running' | 'Succeeded' | 'Failed' {
  if (inits.some((c) => c.terminated !== undefined && c.terminated.code !== 0)) return 'Failed';
  if (!inits.every((c) => c.terminated?.code === 0)) return 'Pending';
  if (containers.length === 0 || !containers.every((c) => c.terminated !== undefined)) return 'Running';
  return containers.every((c) => c.terminated?.code === 0) ? 'Succeeded' : 'Failed';
}

/** Whether restartPolicy restarts a container that exited with `code`. */
export function restarts(policy: string, code: number): boolean {
  return policy === 'Always' || (policy === 'OnFailure' && code !== 0);
}

/** The restart policy of an init container: run to a successful exit, restarted after a failure unless the pod's policy is Never. */
export function initPolicy(podPolicy: string): string {
  return podPolicy === 'Never' ? 'Never' : 'OnFailure';
}

/** The wait before restart number `n` (1-based): 1 s, doubling, at most 30 s. */
export function restartBackoffMs(n: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.min(Math.max(n, 1) - 1, 5));
}
