import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError, messageOf } from '../core/index.ts';
import type { ClusterPlan } from './plan.ts';

/**
 * Everything the sandbox made lives under one directory, recorded in
 * `<dir>/state.json`, so `down` works from a fresh shell. The file is written
 * atomically (temp + rename) after every change, before the next one starts,
 * so a crash leaves a record of everything already created.
 */
export const DEFAULT_SANDBOX_DIR = '/var/lib/isthmus/sandbox';

export function sandboxDir(override?: string): string {
  return override ?? process.env['ISTHMUS_SANDBOX_DIR'] ?? DEFAULT_SANDBOX_DIR;
}

export interface ProcessRecord {
  /** e.g. "c1/etcd" */
  readonly name: string;
  readonly pid: number;
  readonly command: string;
  readonly log: string;
}

export interface ClusterState extends ClusterPlan {
  readonly dir: string;
  readonly server: string;
}

export interface SandboxState {
  readonly version: 1;
  readonly createdAt: string;
  /** "starting" until every cluster answered ready once; then "up". */
  phase: 'starting' | 'up';
  readonly kubernetesVersion: string;
  readonly clusters: ClusterState[];
  readonly processes: ProcessRecord[];
  /** Network namespaces the sandbox created (deleted by `down`). */
  readonly netns: string[];
  /** Host interfaces the sandbox created (deleted by `down`). */
  readonly interfaces: string[];
}

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

export function kubeconfigPath(dir: string): string {
  return join(dir, 'kubeconfig');
}

export async function readState(dir: string): Promise<SandboxState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IsthmusError(ErrorCodes.INTERNAL, `cannot read ${statePath(dir)}: ${messageOf(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as SandboxState;
  } catch (err) {
    throw new IsthmusError(ErrorCodes.INTERNAL, `${statePath(dir)} is corrupt (${messageOf(err)}); run \`isthmus sandbox down\` to clean up`, { cause: err });
  }
}

export async function writeState(dir: string, state: SandboxState): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${statePath(dir)}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, statePath(dir));
}
