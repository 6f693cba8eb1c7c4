import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What the sandbox kubelet made for each pod, on disk under `<clusterDir>/pods/<uid>/`,
 * so a restarted kubelet adopts running pods instead of recreating them, and
 * `sandbox down` (which deletes the namespaces) leaks nothing.
 */
/** How one run of a container ended. */
export interface ContainerExit {
  readonly at: string;
  readonly code: number;
  /** Completed, Error, or StartError (its program is not on this machine). */
  readonly reason: string;
  readonly message?: string;
  readonly startedAt?: string;
}

export interface ContainerRecord {
  readonly name: string;
  /** 'process' when the sandbox runs something for this image, 'none' otherwise. */
  readonly kind: 'process' | 'none';
  /** The container's shim (shim.ts); its child is the container's process. */
  pid?: number;
  restarts: number;
  startedAt?: string;
  /** How the previous run ended (the container was restarted since). */
  lastExit?: ContainerExit;
  /** Set when the container ended and its restartPolicy keeps it so. */
  terminated?: ContainerExit;
  /** Do not start before this time (restart backoff), ms since the epoch. */
  notBefore?: number;
}

export interface PodRecord {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly nodeNetns: string;
  /** The pod's own namespace, or the node's for hostNetwork pods. */
  readonly netns: string;
  readonly hostNetwork: boolean;
  /** Node end of the pod's veth (absent for hostNetwork pods). */
  readonly nodeVeth?: string;
  readonly ip: string;
  readonly createdAt: string;
  containers: ContainerRecord[];
  /** Init containers, run one at a time to completion before `containers` (absent in records of older kubelets). */
  initContainers?: ContainerRecord[];
  /** Mount points this kubelet created on the host for the pod's volumes (removed when empty). */
  readonly createdMountpoints: string[];
}

export function podDir(clusterDir: string, uid: string): string {
  return join(clusterDir, 'pods', uid);
}

export async function saveRecord(clusterDir: string, r: PodRecord): Promise<void> {
  const dir = podDir(clusterDir, r.uid);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, 'record.json.tmp');
  await writeFile(tmp, JSON.stringify(r, null, 2));
  await rename(tmp, join(dir, 'record.json'));
}

export async function loadRecords(clusterDir: string): Promise<PodRecord[]> {
  let uids: string[];
  try {
    uids = await readdir(join(clusterDir, 'pods'));
  } catch {
    return [];
  }
  const out: PodRecord[] = [];
  for (const uid of uids) {
    try {
      out.push(JSON.parse(await readFile(join(podDir(clusterDir, uid), 'record.json'), 'utf8')) as PodRecord);
    } catch {
      /* a pod dir without a record: removed by the sweep below */
    }
  }
  return out;
}

export async function removeRecord(clusterDir: string, uid: string): Promise<void> {
  await rm(podDir(clusterDir, uid), { recursive: true, force: true });
}
