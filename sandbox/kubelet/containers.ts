import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { projectRoot } from '../versions.ts';

/**
 * What the sandbox runs for a container, by image (documented in the README):
 * - `isthmus…` (e.g. isthmus:dev): this checkout's `isthmus <args>`; a leading
 *   "isthmus" in command/args is dropped, so both `args: [gateway]` and
 *   `command: [isthmus, gateway]` work;
 * - `isthmus/echo` (any tag): `isthmus sandbox echo` on the containerPorts (8080 when none);
 * - CoreDNS (`coredns/coredns`, `registry.k8s.io/coredns/coredns`): the CoreDNS binary
 *   built by ./setup, with the container's args;
 * - anything else: no process; the container counts as running.
 * Pure: the caller spawns the result.
 */
export type ImageKind = 'isthmus' | 'echo' | 'coredns' | 'none';

export function imageKind(image: string): ImageKind {
  const repo = image.replace(/[:@].*$/, '');
  if (repo === 'isthmus/echo' || repo.endsWith('/isthmus/echo')) return 'echo';
  if (/(^|\/)coredns\/coredns$/.test(repo)) return 'coredns';
  if (/^isthmus/.test(repo) || /\/isthmus[^/]*$/.test(repo)) return 'isthmus';
  return 'none';
}

export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
}

export function launchFor(c: V1Container, corednsBinary: string): Launch | undefined {
  const kind = imageKind(c.image ?? '');
  const cli = join(projectRoot(), 'cli', 'main.ts');
  switch (kind) {
    case 'echo': {
      const ports = (c.ports ?? []).map((p) => p.containerPort);
      return { command: process.execPath, args: ['--no-warnings', cli, 'sandbox', 'echo', '--ports', (ports.length > 0 ? ports : [8080]).join(',')] };
    }
    case 'isthmus': {
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      if (argv[0] === 'isthmus' || argv[0]?.endsWith('/isthmus')) argv.shift();
      return { command: process.execPath, args: ['--no-warnings', cli, ...argv] };
    }
    case 'coredns':
      return { command: corednsBinary, args: [...(c.args ?? [])] };
    case 'none':
      return undefined;
  }
}

/** Values a container's env may take from its pod (fieldRef paths the sandbox supports). */
export function fieldValue(pod: V1Pod, path: string, nodeIp: string, podIp: string): string | undefined {
  switch (path) {
    case 'metadata.name':
      return pod.metadata?.name;
    case 'metadata.namespace':
      return pod.metadata?.namespace;
    case 'metadata.uid':
      return pod.metadata?.uid;
    case 'spec.nodeName':
      return pod.spec?.nodeName;
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName;
    case 'status.podIP':
      return podIp;
    case 'status.hostIP':
      return nodeIp;
    default: {
      const label = /^metadata\.labels\['(.+)'\]$/.exec(path);
      if (label?.[1] !== undefined) return pod.metadata?.labels?.[label[1]];
      const ann = /^metadata\.annotations\['(.+)'\]$/.exec(path);
      if (ann?.[1] !== undefined) return pod.metadata?.annotations?.[ann[1]];
      return undefined;
    }
  }
}

/** Quotes a word for /bin/sh. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The shell prologue run inside the pod's network namespace (and the private mount
 * namespace `ip netns exec` gives it): bind each volume at its mountPath, then exec.
 */
export function mountScript(mounts: readonly { source: string; target: string; readOnly: boolean }[]): string {
  const lines = ['set -e'];
  for (const m of mounts) {
    lines.push(`mount --bind ${shQuote(m.source)} ${shQuote(m.target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${shQuote(m.target)}`);
  }
  lines.push('exec "$@"');
  return lines.join('\n');
}
