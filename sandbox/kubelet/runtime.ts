import { spawn } from 'node:child_process';
import { appendFile, mkdir, open, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { readlinkSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { V1Container, V1Pod, V1Probe } from '@kubernetes/client-node';
import { missingDependency, type CommandRunner } from '../../core/index.ts';
import { cmdlineOf, signalGroup } from '../process.ts';
import { fieldValue, launchFor, mountScript, type Launch } from './containers.ts';

/**
 * Runs a pod's container processes inside its network namespace, each detached (its
 * own process group, so it outlives a kubelet restart) with its log under the pod's
 * folder. `ip netns exec` gives each process a private mount namespace (and the
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
}

export function envFor(ctx: ContainerContext, secretValue: (ns: string, name: string, key: string, kind: 'secret' | 'configMap') => Promise<string | undefined>): Promise<Record<string, string>> {
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

async function ensureMountpoint(target: string, isFile: boolean, log: string): Promise<void> {
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

/** Starts one container; returns its pid, or undefined when the image runs no process. */
export async function startContainer(ctx: ContainerContext, env: Record<string, string>): Promise<number | undefined> {
  const launch: Launch | undefined = launchFor(ctx.container, ctx.corednsBinary);
  if (launch === undefined) return undefined;
  const mounts: { source: string; target: string; readOnly: boolean }[] = [];
  for (const m of ctx.container.volumeMounts ?? []) {
    const base = ctx.volumes.get(m.name);
    if (base === undefined) continue;
    const source = m.subPath === undefined || m.subPath === '' ? base : join(base, m.subPath);
    const isFile = (await stat(source)).isFile();
    await ensureMountpoint(m.mountPath, isFile, ctx.mountpointLog);
    mounts.push({ source, target: m.mountPath, readOnly: m.readOnly === true });
  }
  const logFile = join(ctx.podDir, `${ctx.container.name}.log`);
  const fh = await open(logFile, 'a', 0o600);
  try {
    const child = spawn('ip', ['netns', 'exec', ctx.netns, 'sh', '-c', mountScript(mounts), ctx.container.name, launch.command, ...launch.args], {
      detached: true,
      stdio: ['ignore', fh.fd, fh.fd],
      env,
      cwd: ctx.container.workingDir ?? '/',
    });
    child.on('error', () => {});
    child.unref();
    if (child.pid === undefined) throw missingDependency('ip');
    return child.pid;
  } finally {
    await fh.close();
  }
}

/** True when `pid` is alive (not a zombie) and inside network namespace `netns`. */
export function runningIn(pid: number, netns: string): boolean {
  if (cmdlineOf(pid) === undefined) return false;
  try {
    return readlinkSync(`/proc/${pid}/ns/net`) === `net:[${statSync(`/run/netns/${netns}`).ino}]`;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`, to the container's process group. */
export async function stopContainer(pid: number, netns: string, graceMs: number): Promise<void> {
  if (!runningIn(pid, netns)) return;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (runningIn(pid, netns) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (runningIn(pid, netns)) signalGroup(pid, 'SIGKILL');
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
    const host = h.host ?? '127.0.0.1';
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
