import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { dumpYaml } from '@kubernetes/client-node';
import { SystemRunner, messageOf, str, validateConfig } from '../core/index.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { Kube, type Obj } from './kube-apply.ts';

/**
 * `isthmus gather --context A [--context B …] [--out FILE]`: what support needs, in one
 * .tar.gz: per cluster our namespace's objects (pods, workloads, ConfigMaps, Services,
 * Gateways, RouteAgents, Leases, Events), the logs of every container of ours (current
 * and previous), nodes, the CoreDNS ConfigMap and our CRDs. Secrets are listed by name
 * and key only: their values never leave the cluster. What cannot be read is noted in
 * `errors.txt` instead of stopping the rest.
 */
const USAGE = 'isthmus gather [--context C]… [--kubeconfig F] [--out isthmus-gather.tar.gz]';
const NS = 'isthmus-system';

const OBJECTS: readonly (readonly [string, string, string | undefined])[] = [
  ['v1', 'Pod', NS], ['apps/v1', 'Deployment', NS], ['apps/v1', 'DaemonSet', NS], ['apps/v1', 'StatefulSet', NS], ['v1', 'ConfigMap', NS], ['v1', 'Service', NS],
  ['v1', 'Event', NS], ['coordination.k8s.io/v1', 'Lease', NS], ['isthmus.dev/v1alpha1', 'Gateway', NS], ['isthmus.dev/v1alpha1', 'RouteAgent', NS],
  ['v1', 'Node', undefined], ['multicluster.x-k8s.io/v1beta1', 'ServiceExport', undefined], ['multicluster.x-k8s.io/v1beta1', 'ServiceImport', undefined],
];

/** YAML of any object: client-node's typed objects (from its ObjectSerializer) make js-yaml throw, so plain JSON first. */
export function plainYaml(o: unknown): string {
  return dumpYaml(JSON.parse(JSON.stringify(o ?? {})) as object);
}

/** A Secret as gathered: its name, type and key names; never a value. Pure. */
export function redactSecret(s: Obj): Obj {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: s.metadata?.name ?? '', namespace: s.metadata?.namespace ?? '' }, type: s['type'], data: Object.fromEntries(Object.keys(s.data ?? {}).map((k) => [k, '(redacted)'])) };
}

async function gatherCluster(kube: Kube, dir: string, errors: string[]): Promise<void> {
  const yaml = plainYaml;
  const put = async (file: string, content: string): Promise<void> => {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), content);
  };
  const tryTo = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      errors.push(`${kube.context}: ${what}: ${messageOf(err)}`);
    }
  };
  await tryTo('version', async () => put('version.txt', `${(await kube.version()).gitVersion}\n`));
  for (const [apiVersion, kind, ns] of OBJECTS) {
    await tryTo(`list ${kind}`, async () => put(`${kind.toLowerCase()}s.yaml`, yaml({ apiVersion: 'v1', kind: 'List', items: await kube.list(apiVersion, kind, ns) })));
  }
  await tryTo('list Secret', async () => put('secrets.yaml', yaml({ apiVersion: 'v1', kind: 'List', items: (await kube.list('v1', 'Secret', NS)).map(redactSecret) })));
  await tryTo('CoreDNS', async () => put('coredns-configmap.yaml', yaml(await kube.read('v1', 'ConfigMap', 'coredns', 'kube-system'))));
  await tryTo('logs', async () => {
    for (const pod of (await kube.core.listNamespacedPod({ namespace: NS })).items) {
      for (const c of pod.spec?.containers ?? []) {
        for (const previous of [false, true]) {
          const name = pod.metadata?.name ?? '';
          const log = await kube.core.readNamespacedPodLog({ name, namespace: NS, container: c.name, previous, tailLines: 5000 }).catch(() => undefined);
          if (log !== undefined && log !== '') await put(`logs/${name}/${c.name}${previous ? '.previous' : ''}.log`, log);
        }
      }
    }
  });
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help']));
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n\n  Collects Isthmus's objects and logs of every given cluster into one archive; Secrets' values are left out.\n`);
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const cfg = validateConfig({ out: str('archive to write (default isthmus-gather.tar.gz)', 'isthmus-gather.tar.gz', /\.tar\.gz$/, 'must end in .tar.gz') }, { out: optionRecord(args)['out'] }, 'gather options');
  const kubeconfig = optionRecord(args)['kubeconfig'];
  const work = await mkdtemp(join(tmpdir(), 'isthmus-gather-'));
  const top = basename(cfg.out, '.tar.gz');
  const errors: string[] = [];
  try {
    for (const c of args.options.get('context') ?? [undefined]) {
      const kube = Kube.load(kubeconfig, c);
      await gatherCluster(kube, join(work, top, kube.context), errors);
    }
    await mkdir(join(work, top), { recursive: true });
    await writeFile(join(work, top, 'errors.txt'), errors.length === 0 ? 'none\n' : errors.join('\n') + '\n');
    await new SystemRunner().run('tar', ['-czf', resolve(cfg.out), '-C', work, top]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`wrote ${cfg.out}${errors.length === 0 ? '' : ` (${errors.length} things could not be read: see ${top}/errors.txt in it)`}\n`);
  return 0;
}

export const gatherCommand: Command = {
  name: 'gather',
  run,
};
