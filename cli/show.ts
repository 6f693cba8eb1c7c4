import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dumpYaml } from '@kubernetes/client-node';
import type { BrokerClient, Cluster, Endpoint } from '../core/broker-api/index.ts';
import { projectRoot } from '../sandbox/versions.ts';
import { opt, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { Kube, clusterBrokerClient, type Obj } from './kube-apply.ts';
import { JOIN_WORKLOADS } from './join-plan.ts';
import { showCommand as mcsShow } from './mcs-verbs.ts';

/**
 * `isthmus show connections|endpoints|gateways|networks|versions|all` for one cluster
 * (`exports` and `imports` are the MCS verbs'). Gateways and connections come from the
 * cluster's Gateway resources; endpoints and networks from the broker, read with the
 * cluster's own broker certificate (Secret isthmus-broker-client), as its gateway reads them.
 */
const USAGE = 'isthmus show connections|endpoints|gateways|networks|exports|imports|versions|all [-o table|json|yaml] [--context C] [--kubeconfig F]';
const NS = 'isthmus-system';
const SECTIONS = ['gateways', 'connections', 'endpoints', 'networks', 'versions'] as const;
type Section = (typeof SECTIONS)[number];
type Rows = { readonly columns: readonly string[]; readonly rows: readonly (readonly string[])[] };

interface GatewayObj extends Obj {
  status?: {
    haStatus?: string; summary?: string;
    localEndpoint?: { cableDriver?: string; privateIP?: string; publicIP?: string; behindNAT?: boolean };
    connections?: { cluster: string; status: string; endpoint?: string; usingIP?: string; natTraversal?: boolean; rtt?: { avgMs?: number }; statusMessage?: string }[];
  };
}

export function formatRows(data: Rows, format: 'table' | 'json' | 'yaml'): string {
  const objects = data.rows.map((r) => Object.fromEntries(data.columns.map((c, i) => [c.toLowerCase(), r[i] ?? ''])));
  if (format === 'json') return JSON.stringify(objects, null, 2) + '\n';
  if (format === 'yaml') return dumpYaml(objects);
  const all = [data.columns, ...data.rows];
  const widths = data.columns.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

async function brokerClient(kube: Kube): Promise<BrokerClient> {
  const b = await clusterBrokerClient(kube, 'show');
  if (b === undefined) throw usageError(`cluster ${kube.context} has not joined a clusterset (no ${NS}/isthmus-broker-client): run \`isthmus join\` first`, USAGE);
  return b.client;
}

async function section(kube: Kube, what: Section): Promise<Rows> {
  switch (what) {
    case 'gateways': {
      const gws = await kube.list<GatewayObj>('isthmus.dev/v1alpha1', 'Gateway', NS);
      return {
        columns: ['NODE', 'HA', 'DRIVER', 'PRIVATE', 'PUBLIC', 'NAT', 'CONNECTED'],
        rows: gws.map((g) => [g.metadata?.name ?? '', g.status?.haStatus ?? '-', g.status?.localEndpoint?.cableDriver ?? '-', g.status?.localEndpoint?.privateIP ?? '-',
          g.status?.localEndpoint?.publicIP || '-', g.status?.localEndpoint?.behindNAT === true ? 'yes' : 'no', g.status?.summary ?? '-']),
      };
    }
    case 'connections': {
      const gws = await kube.list<GatewayObj>('isthmus.dev/v1alpha1', 'Gateway', NS);
      const active = gws.find((g) => g.status?.haStatus === 'active');
      return {
        columns: ['GATEWAY', 'CLUSTER', 'STATUS', 'ENDPOINT', 'USING', 'NAT-T', 'RTT-MS', 'MESSAGE'],
        rows: (active?.status?.connections ?? []).map((c) => [active?.metadata?.name ?? '', c.cluster, c.status, c.endpoint ?? '-', c.usingIP ?? '-',
          c.natTraversal === true ? 'yes' : 'no', c.rtt?.avgMs === undefined ? '-' : c.rtt.avgMs.toFixed(2), c.statusMessage ?? '']),
      };
    }
    case 'endpoints':
    case 'networks': {
      const client = await brokerClient(kube);
      try {
        if (what === 'endpoints') {
          const events = (await client.list(['ENDPOINT'])).events;
          return {
            columns: ['CLUSTER', 'HOSTNAME', 'DRIVER', 'PRIVATE', 'PUBLIC', 'OBSERVED'],
            rows: events.map((e) => e.record as Endpoint).map((e) => [e.cluster_id, e.hostname, e.cable_driver, e.private_ip, e.public_ip || '-', e.observed_source_ip || '-']),
          };
        }
        const events = (await client.list(['CLUSTER'])).events;
        return {
          columns: ['CLUSTER', 'POD-CIDRS', 'SERVICE-CIDRS', 'GLOBAL-CIDR'],
          rows: events.map((e) => e.record as Cluster).map((c) => [c.cluster_id, c.pod_cidrs.join(','), c.service_cidrs.join(','), c.global_cidr || '-']),
        };
      } finally {
        client.close();
      }
    }
    case 'versions': {
      const v = await kube.version();
      const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
      const rows: string[][] = [['isthmus CLI', pkg.version], ['Kubernetes (apiserver)', v.gitVersion]];
      // every workload join runs (policy parts too), and the broker where it runs
      const workloads = [...JOIN_WORKLOADS.filter(([apiVersion]) => apiVersion === 'apps/v1'), ['apps/v1', 'Deployment', 'isthmus-broker'] as const];
      for (const [, kind, name] of workloads) {
        const o = await kube.read<Obj & { spec?: { template?: { spec?: { containers?: { image?: string }[] } } } }>('apps/v1', kind, name, NS);
        if (o !== undefined) rows.push([`${kind} ${name}`, o.spec?.template?.spec?.containers?.map((c) => c.image ?? '').join(',') ?? '-']);
      }
      return { columns: ['COMPONENT', 'VERSION'], rows };
    }
  }
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help', 'all-namespaces']));
  const [what, ...extra] = args.positionals;
  if (what === 'exports' || what === 'imports') return mcsShow.run(argv);
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  if (what === undefined || extra.length > 0 || (what !== 'all' && !(SECTIONS as readonly string[]).includes(what))) throw usageError(`expected one of ${[...SECTIONS, 'exports', 'imports', 'all'].join(', ')}`, USAGE);
  const format = opt(args, 'output') ?? 'table';
  if (format !== 'table' && format !== 'json' && format !== 'yaml') throw usageError(`-o must be table, json or yaml, got ${JSON.stringify(format)}`, USAGE);
  const kube = Kube.load(opt(args, 'kubeconfig'), opt(args, 'context'));
  const wanted: Section[] = what === 'all' ? [...SECTIONS] : [what as Section];
  for (const s of wanted) {
    if (wanted.length > 1 && format === 'table') process.stdout.write(`\n== ${s}\n`);
    process.stdout.write(formatRows(await section(kube, s), format));
  }
  if (what === 'all') {
    if (format === 'table') process.stdout.write('\n== exports\n');
    const code = await mcsShow.run(['exports', '-A', '-o', format, ...(opt(args, 'context') === undefined ? [] : ['--context', opt(args, 'context') ?? '']), ...(opt(args, 'kubeconfig') === undefined ? [] : ['--kubeconfig', opt(args, 'kubeconfig') ?? ''])]);
    if (code !== 0) return code;
  }
  return 0;
}

export const showClustersetCommand: Command = {
  name: 'show',
  run,
};
