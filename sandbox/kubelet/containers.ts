import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { projectRoot } from '../versions.ts';
import { containerArgv, imageConfig, resolveProgram, substitute } from './images.ts';

/**
 * What the sandbox runs for a container, by image (documented in the README):
 * - `isthmus…` (e.g. isthmus:dev): this checkout's `isthmus <args>`; a leading
 *   "isthmus" in command/args is dropped, so both `args: [gateway]` and
 *   `command: [isthmus, gateway]` work;
 * - `isthmus/echo` (any tag): `isthmus sandbox echo` on the containerPorts (8080 when none);
 * - CoreDNS (`coredns/coredns`, `registry.k8s.io/coredns/coredns`): the CoreDNS binary
 *   built by ./setup, with the container's args;
 * - any other image: its command by Kubernetes' rules (images.ts knows the ENTRYPOINT
 *   and CMD of common images), run with this machine's programs; a program the
 *   machine lacks is reported as `missing`; an unknown image without a command runs
 *   nothing (undefined) and the container counts as running.
 * Pure but for `which` and `applets`, which the caller passes.
 */
export type ImageKind = 'isthmus' | 'echo' | 'coredns' | 'other';

export function imageKind(image: string): ImageKind {
  const repo = image.replace(/[:@].*$/, '');
  if (repo === 'isthmus/echo' || repo.endsWith('/isthmus/echo')) return 'echo';
  if (/(^|\/)coredns\/coredns$/.test(repo)) return 'coredns';
  if (/^isthmus/.test(repo) || /\/isthmus[^/]*$/.test(repo)) return 'isthmus';
  return 'other';
}

/** True when the sandbox runs nothing for the container: an unknown image and no command. */
export function runsNothing(c: V1Container): boolean {
  return imageKind(c.image ?? '') === 'other' && containerArgv(c, imageConfig(c.image ?? '')) === undefined;
}

export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
}

export interface LaunchContext {
  readonly corednsBinary: string;
  /** nginx's document root: the volume mounted at /usr/share/nginx/html, else a folder with a default page. */
  readonly html: string;
  readonly which: (name: string) => string | undefined;
  readonly applets: ReadonlySet<string>;
}

export type LaunchResult = Launch | { readonly missing: string } | undefined;

export function launchFor(c: V1Container, ctx: LaunchContext): LaunchResult {
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
      return { command: ctx.corednsBinary, args: [...(c.args ?? [])] };
    case 'other': {
      const img = imageConfig(c.image ?? '');
      const argv = containerArgv(c, img);
      if (argv === undefined) return undefined;
      const sub = substitute(argv, { html: ctx.html, agnhost: [process.execPath, '--no-warnings', cli, 'sandbox', 'agnhost'] });
      const r = resolveProgram(sub, img?.busybox ?? false, ctx.which, ctx.applets);
      if ('missing' in r) return r;
      const [command, ...args] = r.argv;
      return { command: command as string, args };
    }
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
    // the sandbox's pods and nodes are single-stack: the list fields hold the one address
    case 'status.podIP':
    case 'status.podIPs':
      return podIp;
    case 'status.hostIP':
    case 'status.hostIPs':
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
 * namespace `ip netns exec` gives it, and the UTS namespace `unshare` gives it): set the
 * pod's hostname, bind each volume at its mountPath, enter the working folder, then exec.
 */
export function mountScript(mounts: readonly { source: string; target: string; readOnly: boolean }[], hostname?: string, workingDir?: string): string {
  const lines = ['set -e'];
  if (hostname !== undefined) lines.push(`hostname ${shQuote(hostname)}`);
  for (const m of mounts) {
    lines.push(`mount --bind ${shQuote(m.source)} ${shQuote(m.target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${shQuote(m.target)}`);
  }
  if (workingDir !== undefined) lines.push(`cd ${shQuote(workingDir)}`);
  lines.push('exec "$@"');
  return lines.join('\n');
}
