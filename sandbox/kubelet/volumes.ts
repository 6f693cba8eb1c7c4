import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CoreV1Api, V1Pod, V1Volume } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError } from '../../core/index.ts';
import { fieldValue } from './containers.ts';

/**
 * Volumes projected as files under `<podDir>/volumes/<name>`, as a kubelet does:
 * configMap, secret, emptyDir, projected (serviceAccountToken, configMap, secret,
 * downwardAPI) and hostPath. Any other type is refused with UNSUPPORTED naming it,
 * and the kubelet reports that as an Event.
 */
export const SUPPORTED_VOLUMES = ['configMap', 'secret', 'emptyDir', 'projected', 'hostPath'] as const;

/** The first volume of a type the sandbox lacks, e.g. "data (persistentVolumeClaim)". */
export function unsupportedVolume(pod: V1Pod): string | undefined {
  for (const v of pod.spec?.volumes ?? []) {
    const types = Object.keys(v).filter((k) => k !== 'name' && (v as unknown as Record<string, unknown>)[k] !== undefined);
    const bad = types.find((t) => !(SUPPORTED_VOLUMES as readonly string[]).includes(t));
    if (bad !== undefined) return `${v.name} (${bad})`;
  }
  return undefined;
}

async function put(dir: string, file: string, content: string | Buffer, mode: number): Promise<void> {
  const path = join(dir, file);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content, { mode });
}

async function keys(
  dir: string,
  data: Record<string, string | Buffer>,
  items: readonly { key: string; path: string }[] | undefined,
  mode: number,
): Promise<void> {
  if (items === undefined) {
    for (const [k, v] of Object.entries(data)) await put(dir, k, v, mode);
    return;
  }
  for (const it of items) {
    const v = data[it.key];
    if (v !== undefined) await put(dir, it.path, v, mode);
  }
}

function decodeSecret(data: Record<string, string> | undefined): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(data ?? {})) out[k] = Buffer.from(v, 'base64');
  return out;
}

export interface VolumeContext {
  readonly api: CoreV1Api;
  readonly pod: V1Pod;
  readonly nodeIp: string;
  readonly podIp: string;
  /** Makes a hostPath folder of type DirectoryOrCreate, recording what it created for `down` (default: mkdir -p, unrecorded). */
  readonly createHostDir?: (path: string) => Promise<void>;
}

/** Writes every volume of the pod; returns the host path of each by name. */
export async function prepareVolumes(ctx: VolumeContext, podDir: string): Promise<Map<string, string>> {
  const ns = ctx.pod.metadata?.namespace ?? 'default';
  const paths = new Map<string, string>();
  for (const v of ctx.pod.spec?.volumes ?? []) {
    if (v.hostPath !== undefined) {
      // as a kubelet does: DirectoryOrCreate makes the folder (the other types are not checked here)
      if (v.hostPath.type === 'DirectoryOrCreate') await (ctx.createHostDir ?? ((p: string) => mkdir(p, { recursive: true }).then(() => undefined)))(v.hostPath.path);
      paths.set(v.name, v.hostPath.path);
      continue;
    }
    const dir = join(podDir, 'volumes', v.name);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await fill(ctx, ns, v, dir);
    paths.set(v.name, dir);
  }
  return paths;
}

async function fill(ctx: VolumeContext, ns: string, v: V1Volume, dir: string): Promise<void> {
  if (v.emptyDir !== undefined) return;
  if (v.configMap !== undefined) {
    const cm = await ctx.api.readNamespacedConfigMap({ name: v.configMap.name ?? '', namespace: ns });
    await keys(dir, cm.data ?? {}, v.configMap.items, 0o644);
    return;
  }
  if (v.secret !== undefined) {
    const s = await ctx.api.readNamespacedSecret({ name: v.secret.secretName ?? '', namespace: ns });
    await keys(dir, decodeSecret(s.data), v.secret.items, 0o600);
    return;
  }
  if (v.projected !== undefined) {
    for (const src of v.projected.sources ?? []) {
      if (src.serviceAccountToken !== undefined) {
        const sa = ctx.pod.spec?.serviceAccountName ?? 'default';
        const tr = await ctx.api.createNamespacedServiceAccountToken({
          name: sa,
          namespace: ns,
          body: {
            spec: {
              audiences: src.serviceAccountToken.audience === undefined ? [] : [src.serviceAccountToken.audience],
              expirationSeconds: src.serviceAccountToken.expirationSeconds ?? 3607,
              boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: ctx.pod.metadata?.name ?? '', uid: ctx.pod.metadata?.uid ?? '' },
            },
          },
        });
        await put(dir, src.serviceAccountToken.path, tr.status?.token ?? '', 0o600);
      } else if (src.configMap !== undefined) {
        const cm = await ctx.api.readNamespacedConfigMap({ name: src.configMap.name ?? '', namespace: ns });
        await keys(dir, cm.data ?? {}, src.configMap.items, 0o644);
      } else if (src.secret !== undefined) {
        const s = await ctx.api.readNamespacedSecret({ name: src.secret.name ?? '', namespace: ns });
        await keys(dir, decodeSecret(s.data), src.secret.items, 0o600);
      } else if (src.downwardAPI !== undefined) {
        for (const item of src.downwardAPI.items ?? []) {
          const value = item.fieldRef === undefined ? undefined : fieldValue(ctx.pod, item.fieldRef.fieldPath, ctx.nodeIp, ctx.podIp);
          if (value !== undefined) await put(dir, item.path, value, 0o644);
        }
      }
    }
    return;
  }
  throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `volume ${v.name}: a type the sandbox lacks`);
}
