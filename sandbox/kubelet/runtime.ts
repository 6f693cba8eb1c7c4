import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdir, readFile, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { missingDependency, type CommandRunner } from '../../core/index.ts';
import { cmdlineOf, signalGroup } from '../process.ts';
import { fieldValue, launchFor, mountScript } from './containers.ts';
import { expandVars } from './images.ts';

/**
 * Runs a pod's container processes inside its network namespace and a UTS namespace
 * with the pod's hostname, each under a shim (shim.ts), detached (its own process group,
 * so it outlives a kubelet restart), with its CRI-format log and exit record under the
 * pod's folder. `ip netns exec` gives each process a private mount namespace (and the
 * namespace's /etc/netns/<ns>/resolv.conf as /etc/resolv.conf), where the volumes are
 * bound at their mountPaths before the command is exec'd.
 */
export interface ContainerContext {
  readonly pod: V1Pod;
  readonly container: V1Container;
  readonly netns: string;
  readonly podDir: string;
  readonly volumes: ReadonlyMap<string, string>;
  readonly podIp: string;
  readonly nodeIp: string;
  readonly cluster: string;
  readonly apiServiceIp: string;
  readonly corednsBinary: string;
  /** File listing host mount points the sandbox created, for `down` to remove. */
  readonly mountpointLog: string;
  /** The pod's hostname, set in the container's own UTS namespace (absent for hostNetwork pods). */
  readonly hostname?: string;
}

/**
 * A container's environment as a kubelet builds it: the defaults below, then `envFrom`
 * (every key of a ConfigMap or Secret, with its prefix), then `env` (which wins).
 * `secretValue` reads one key; `wholeObject` every key (undefined when the object is absent).
 */
export function envFor(
  ctx: ContainerContext,
  secretValue: (ns: string, name: string, key: string, kind: 'secret' | 'configMap') => Promise<string | undefined>,
  wholeObject?: (ns: string, name: string, kind: 'secret' | 'configMap') => Promise<Record<string, string> | undefined>,
): Promise<Record<string, string>> {
  return (async () => {
    const ns = ctx.pod.metadata?.namespace ?? 'default';
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/root',
      HOSTNAME: ctx.pod.metadata?.name ?? '',
      KUBERNETES_SERVICE_HOST: ctx.apiServiceIp,
      KUBERNETES_SERVICE_PORT: '443',
      POD_NAME: ctx.pod.metadata?.name ?? '',
      POD_NAMESPACE: ns,
      POD_IP: ctx.podIp,
      NODE_NAME: ctx.pod.spec?.nodeName ?? '',
      ISTHMUS_CLUSTER: ctx.cluster,
    };
    for (const src of ctx.container.envFrom ?? []) {
      const ref = src.configMapRef ?? src.secretRef;
      if (ref === undefined || wholeObject === undefined) continue;
      const data = await wholeObject(ns, ref.name ?? '', src.configMapRef === undefined ? 'secret' : 'configMap').catch(() => undefined);
      for (const [k, v] of Object.entries(data ?? {})) env[`${src.prefix ?? ''}${k}`] = v;
    }
    for (const e of ctx.container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef !== undefined) {
        const v = fieldValue(ctx.pod, e.valueFrom.fieldRef.fieldPath, ctx.nodeIp, ctx.podIp);
        if (v !== undefined) env[e.name] = v;
      } else if (e.valueFrom?.secretKeyRef !== undefined) {
        const r = e.valueFrom.secretKeyRef;
        const v = await secretValue(ns, r.name ?? '', r.key, 'secret');
        if (v !== undefined) env[e.name] = v;
      } else if (e.valueFrom?.configMapKeyRef !== undefined) {
        const r = e.valueFrom.configMapKeyRef;
        const v = await secretValue(ns, r.name ?? '', r.key, 'configMap');
        if (v !== undefined) env[e.name] = v;
      }
    }
    return env;
  })();
}

/** Creates `target` (a folder, or an empty file) when missing, recording the top-most folder made in `log` for `down`. */
export async function ensureMountpoint(target: string, isFile: boolean, log: string): Promise<void> {
  try {
    await stat(target);
    return;
  } catch {
    /* create it */
  }
  // record the top-most folder created, so `down` can remove what it made
  let top = isFile ? dirname(target) : target;
  while (dirname(top) !== top) {
    try {
      await stat(dirname(top));
      break;
    } catch {
      top = dirname(top);
    }
  }
  if (isFile) {
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, '', { flag: 'a' });
  } else {
    await mkdir(target, { recursive: true });
  }
  await appendFile(log, (isFile && top === dirname(target) ? target : top) + '\n');
}

/** Log and exit files of one container, under the pod's folder. */
export function containerFiles(podDir: string, container: string): { log: string; previousLog: string; exit: string; pid: string } {
  return { log: join(podDir, `${container}.log`), previousLog: join(podDir, `${container}.previous.log`), exit: join(podDir, `${container}.exit`), pid: join(podDir, `${container}.exit.pid`) };
}

/** Bound of one container's log before the shim rotates it (one rotated file is kept). */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;

/** shim.ts from source, shim.js from a build: the same kind as this module. */
const SHIM = join(dirname(fileURLToPath(import.meta.url)), `shim${extname(fileURLToPath(import.meta.url))}`);
const NGINX_PAGE = '<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1><p>served by the isthmus sandbox</p></body></html>\n';

export type Started = { readonly pid: number } | { readonly missing: string } | undefined;

let appletCache: Set<string> | undefined;
/** The programs busybox offers, read once (empty without busybox). */
export function busyboxApplets(): ReadonlySet<string> {
  if (appletCache !== undefined) return appletCache;
  const bb = whichSync('busybox');
  const r = bb === undefined ? undefined : spawnSync(bb, ['--list'], { encoding: 'utf8' });
  appletCache = new Set((r?.stdout ?? '').split('\n').filter(Boolean));
  return appletCache;
}

/** The path of `name` on PATH (or `name` itself when it is a path to an executable file). */
export function whichSync(name: string): string | undefined {
  const dirs = name.includes('/') ? [''] : (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  for (const d of dirs) {
    const p = d === '' ? name : join(d, name);
    try {
      accessSync(p, fsConstants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function volumeSource(ctx: ContainerContext, m: { name: string; subPath?: string }): string | undefined {
  const base = ctx.volumes.get(m.name);
  if (base === undefined) return undefined;
  return m.subPath === undefined || m.subPath === '' ? base : join(base, m.subPath);
}

/**
 * Starts one container under its shim, detached: returns the shim's pid, `missing`
 * naming a program this machine lacks (nothing is started), or undefined when the
 * image runs no process.
 */
export async function startContainer(ctx: ContainerContext, env: Record<string, string>): Promise<Started> {
  const defaultHtml = join(ctx.podDir, 'nginx-html');
  let html = defaultHtml;
  for (const m of ctx.container.volumeMounts ?? []) {
    const source = volumeSource(ctx, m);
    if (source !== undefined && m.mountPath.replace(/\/$/, '') === '/usr/share/nginx/html') html = source;
  }
  const expand = (list: readonly string[] | undefined): string[] | undefined => list?.map((a) => expandVars(a, env));
  const command = expand(ctx.container.command);
  const args = expand(ctx.container.args);
  const spec = { ...ctx.container, ...(command === undefined ? {} : { command }), ...(args === undefined ? {} : { args }) };
  const launch = launchFor(spec, { corednsBinary: ctx.corednsBinary, html, which: whichSync, applets: busyboxApplets() });
  if (launch === undefined || 'missing' in launch) return launch;
  if (html === defaultHtml && launch.args.includes(defaultHtml)) {
    await mkdir(html, { recursive: true });
    await writeFile(join(html, 'index.html'), NGINX_PAGE);
  }
  const mounts: { source: string; target: string; readOnly: boolean }[] = [];
  for (const m of ctx.container.volumeMounts ?? []) {
    const source = volumeSource(ctx, m);
    if (source === undefined) continue;
    const isFile = (await stat(source)).isFile();
    await ensureMountpoint(m.mountPath, isFile, ctx.mountpointLog);
    mounts.push({ source, target: m.mountPath, readOnly: m.readOnly === true });
  }
  const files = containerFiles(ctx.podDir, ctx.container.name);
  await rm(files.exit, { force: true });
  const uts = ctx.hostname === undefined ? [] : ['unshare', '--uts'];
  const script = mountScript(mounts, ctx.hostname, ctx.container.workingDir);
  const child = spawn(process.execPath, ['--no-warnings', SHIM, files.log, files.exit, String(LOG_MAX_BYTES), '--',
    'ip', 'netns', 'exec', ctx.netns, ...uts, 'sh', '-c', script, ctx.container.name, launch.command, ...launch.args], {
    detached: true,
    stdio: 'ignore',
    env,
    cwd: '/',
  });
  child.on('error', () => {});
  child.unref();
  if (child.pid === undefined) throw missingDependency('node');
  return { pid: child.pid };
}

/** How a container's last run ended, as its shim recorded it (undefined: no record, e.g. killed with its shim). */
export async function readExit(podDir: string, container: string): Promise<{ code: number; finishedAt: string } | undefined> {
  try {
    const e = JSON.parse(await readFile(containerFiles(podDir, container).exit, 'utf8')) as { code?: number; finishedAt?: string };
    return typeof e.code === 'number' ? { code: e.code, finishedAt: e.finishedAt ?? new Date().toISOString() } : undefined;
  } catch {
    return undefined;
  }
}

/** The container's own process (the shim's child), for exec to enter its namespaces. */
export function containerPid(podDir: string, container: string): number | undefined {
  try {
    const pid = Number(readFileSync(containerFiles(podDir, container).pid, 'utf8'));
    return Number.isInteger(pid) && pid > 0 && cmdlineOf(pid) !== undefined ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Keeps the log of the run that just ended as the previous one (`kubectl logs --previous`). */
export async function keepPreviousLog(podDir: string, container: string): Promise<void> {
  const f = containerFiles(podDir, container);
  await rename(f.log, f.previousLog).catch(() => {});
  await rm(`${f.log}.1`, { force: true });
}

/** True while the shim `pid` (whose command line names the pod's folder) runs. */
export function shimAlive(pid: number, podDir: string): boolean {
  return cmdlineOf(pid)?.includes(podDir) ?? false;
}

/** SIGTERM, then SIGKILL after `graceMs`, to the container's process group (its shim and command). */
export async function stopContainer(pid: number, podDir: string, graceMs: number): Promise<void> {
  if (!shimAlive(pid, podDir)) return;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (shimAlive(pid, podDir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (shimAlive(pid, podDir)) signalGroup(pid, 'SIGKILL');
}

/** The pod's /etc/resolv.conf, through `ip netns exec`'s /etc/netns/<ns>/ convention. */
export async function writeResolvConf(netns: string, content: string): Promise<void> {
  await mkdir(`/etc/netns/${netns}`, { recursive: true });
  await writeFile(`/etc/netns/${netns}/resolv.conf`, content);
}

export async function removeResolvConf(netns: string): Promise<void> {
  await rm(`/etc/netns/${netns}`, { recursive: true, force: true });
}

export function resolvConf(pod: V1Pod, dnsIp: string, domain = 'cluster.local'): string | undefined {
  const policy = pod.spec?.dnsPolicy ?? 'ClusterFirst';
  const ns = pod.metadata?.namespace ?? 'default';
  const cfg = pod.spec?.dnsConfig;
  if (policy === 'Default' || (pod.spec?.hostNetwork === true && policy !== 'ClusterFirstWithHostNet')) return undefined;
  const nameservers = policy === 'None' ? [] : [dnsIp];
  const searches = policy === 'None' ? [] : [`${ns}.svc.${domain}`, `svc.${domain}`, domain];
  nameservers.push(...(cfg?.nameservers ?? []));
  searches.push(...(cfg?.searches ?? []));
  const options = policy === 'None' ? [] : ['ndots:5'];
  for (const o of cfg?.options ?? []) options.push(o.value === undefined ? o.name ?? '' : `${o.name ?? ''}:${o.value}`);
  const lines = nameservers.map((n) => `nameserver ${n}`);
  if (searches.length > 0) lines.push(`search ${searches.join(' ')}`);
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** Removes a folder tree that holds only empty folders; anything with a file in it stays. */
async function removeEmptyTree(path: string): Promise<void> {
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) await removeEmptyTree(join(path, entry.name)).catch(() => {});
  }
  await rmdir(path);
}

/** Removes the host mount points the sandbox created (empty files, and folders holding only empty folders). */
/** Log (in the cluster's folder) of the hostPath folders the sandbox made for DirectoryOrCreate volumes. */
export const HOST_PATHS_LOG = 'hostpaths';

/** Removes the hostPath folders the sandbox made, with what pods wrote there (a gateway's keys). */
export async function removeHostPaths(log: string): Promise<void> {
  const text = await readFile(log, 'utf8').catch(() => '');
  for (const p of new Set(text.split('\n').filter((l) => l.startsWith('/') && l.split('/').length > 3))) await rm(p, { recursive: true, force: true });
}

export async function removeMountpoints(log: string): Promise<void> {
  let text = '';
  try {
    text = await readFile(log, 'utf8');
  } catch {
    return;
  }
  for (const p of new Set(text.split('\n').filter(Boolean))) {
    try {
      const s = await stat(p);
      if (s.isFile() && s.size === 0) await rm(p);
      else if (s.isDirectory()) await removeEmptyTree(p);
    } catch {
      /* gone, or not empty: leave it */
    }
  }
}

/**
 * One readiness probe (httpGet or tcpSocket; exec probes run the command), from
 * inside the pod's namespace. True when it passes.
 */
export async function probeOnce(runner: CommandRunner, netns: string, probe: V1Probe, podIp: string): Promise<boolean> {
  const timeout = String(probe.timeoutSeconds ?? 1);
  if (probe.httpGet !== undefined) {
    const h = probe.httpGet;
    const host = h.host ?? podIp; // as a kubelet: the pod's IP (the node's for hostNetwork pods)
    const url = `${(h.scheme ?? 'HTTP').toLowerCase()}://${host.includes(':') ? `[${host}]` : host}:${String(h.port)}${h.path ?? '/'}`;
    const r = await runner.run('ip', ['netns', 'exec', netns, 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', timeout, url], { allowFailure: true });
    const code = Number(r.stdout.trim());
    return code >= 200 && code < 400;
  }
  if (probe.tcpSocket !== undefined) {
    const host = probe.tcpSocket.host ?? podIp;
    const r = await runner.run('ip', ['netns', 'exec', netns, 'timeout', timeout, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${String(probe.tcpSocket.port)}`], { allowFailure: true });
    return r.code === 0;
  }
  if (probe.exec?.command !== undefined && probe.exec.command.length > 0) {
    const [cmd, ...args] = probe.exec.command;
    const r = await runner.run('ip', ['netns', 'exec', netns, 'timeout', timeout, cmd as string, ...args], { allowFailure: true });
    return r.code === 0;
  }
  return true;
}
