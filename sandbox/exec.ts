import { spawn } from 'node:child_process';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { loadRecords } from './kubelet/records.ts';
import { readState } from './state.ts';

/**
 * `isthmus sandbox exec <context> <pod>|node/<node> [-n ns] -- <cmd>`: runs a host
 * command inside a pod's (or a node's) network namespace. Through `ip netns exec`,
 * a pod's command sees the pod's resolv.conf.
 */
export async function resolveNetns(dir: string, context: string, target: string, namespace: string): Promise<string> {
  const state = await readState(dir);
  if (state === undefined) throw new IsthmusError(ErrorCodes.NOT_FOUND, `no sandbox in ${dir}; start one with \`isthmus sandbox up\``);
  const cluster = state.clusters.find((c) => c.name === context);
  if (cluster === undefined) {
    throw new IsthmusError(ErrorCodes.NOT_FOUND, `no cluster "${context}" in the sandbox (it has ${state.clusters.map((c) => c.name).join(', ')})`);
  }
  if (target.startsWith('node/')) {
    const name = target.slice('node/'.length);
    const node = cluster.nodes.find((n) => n.name === name);
    if (node === undefined) throw new IsthmusError(ErrorCodes.NOT_FOUND, `no node "${name}" in ${context} (it has ${cluster.nodes.map((n) => n.name).join(', ')})`);
    return node.netns;
  }
  const name = target.startsWith('pod/') ? target.slice(4) : target;
  const record = (await loadRecords(cluster.dir)).find((r) => r.namespace === namespace && r.name === name);
  if (record === undefined) {
    throw new IsthmusError(ErrorCodes.NOT_FOUND, `pod ${namespace}/${name} is not running in ${context} (is it scheduled and Running? kubectl --context ${context} -n ${namespace} get pod ${name})`);
  }
  return record.netns;
}

/** Runs `command` in `netns` with this process's stdio; resolves with its exit code. */
export function execIn(netns: string, command: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...command], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}
