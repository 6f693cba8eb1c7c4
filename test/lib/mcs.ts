import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sandbox/index.ts';
import { kubectl } from './cli.ts';
import { eventually } from './cli.ts';
import type { Clusterset } from './clusterset.ts';

/**
 * The MCS half of an e2e clusterset (test/mcs-api.test.ts, test/mcs-conformance.test.ts):
 * the CRDs, each cluster's ClusterProperty (its id), and `isthmus dns` + `isthmus mcs`
 * running with tokens of the ServiceAccounts of deploy/mcs-api/rbac.yaml, so a missing
 * rule there fails the tests. `isthmus dns` runs in the namespace of the cluster's second
 * node and listens on that node's address; `isthmus mcs` adds the Corefile stanza that
 * forwards clusterset.local to it. Every process is started through the Clusterset, which
 * kills it on close().
 */
export const MCS_CRDS: readonly string[] = ['serviceexports.multicluster.x-k8s.io', 'serviceimports.multicluster.x-k8s.io', 'clusterproperties.about.k8s.io'];

/** The address `isthmus dns` of cluster `c` listens on (port 53). */
export const mcsDnsIp = (cs: Clusterset, c: string): string => cs.node(c, 1).ip;

/** The CRDs (Established) and a ClusterProperty `cluster.clusterset.k8s.io` = the cluster's name, in every cluster. */
export async function installMcsApi(cs: Clusterset, clusters: readonly string[]): Promise<void> {
  for (const c of clusters) {
    for (const crd of MCS_CRDS) await cs.kubectl(c, ['apply', '-f', join(projectRoot(), 'deploy', 'crds', `${crd}.json`)]);
    for (const crd of MCS_CRDS) await cs.kubectl(c, ['wait', '--for=condition=Established', `crd/${crd}`, '--timeout=30s']);
  }
  for (const c of clusters) {
    const prop = JSON.stringify({ apiVersion: 'about.k8s.io/v1alpha1', kind: 'ClusterProperty', metadata: { name: 'cluster.clusterset.k8s.io' }, spec: { value: c } });
    await kubectl(cs.kubeconfig, c, ['apply', '-f', '-'], prop);
  }
}

/**
 * deploy/mcs-api/rbac.yaml (and the Deployment checked by a server-side dry run), then
 * `isthmus dns` and `isthmus mcs` (no --cluster: the id comes from the ClusterProperty)
 * for cluster `c`. Logs: dns-<c>.log, mcs-<c>.log in the clusterset's folder.
 */
export async function startMcs(cs: Clusterset, c: string, o: { metricsPort: number; coalesceMs?: number }): Promise<void> {
  const cli = join(projectRoot(), 'cli', 'main.ts');
  await cs.kubectl(c, ['apply', '-f', join(projectRoot(), 'deploy', 'mcs-api', 'rbac.yaml')]);
  await cs.kubectl(c, ['apply', '--dry-run=server', '-f', join(projectRoot(), 'deploy', 'mcs-api', 'deployment.yaml')]);
  const n = cs.node(c, 1);
  cs.startProcess(`dns-${c}`, 'ip', ['netns', 'exec', n.netns, process.execPath, '--no-warnings', cli, 'dns', '--listen', `${n.ip}:53`, '--kubeconfig', await saKubeconfig(cs, c, 'isthmus-dns')]);
  cs.startProcess(`mcs-${c}`, process.execPath, ['--no-warnings', cli, 'mcs', '--broker', cs.broker, '--broker-tls-dir', cs.path(c), '--kubeconfig', await saKubeconfig(cs, c, 'isthmus-mcs'),
    '--dns-address', mcsDnsIp(cs, c), '--coalesce-ms', String(o.coalesceMs ?? 100), '--metrics', `127.0.0.1:${o.metricsPort}`]);
}

/** A kubeconfig with a token of ServiceAccount isthmus-system/`sa` in cluster `c`. */
export async function saKubeconfig(cs: Clusterset, c: string, sa: string): Promise<string> {
  const cluster = cs.state.clusters.find((x) => x.name === c);
  if (cluster === undefined) throw new Error(`no cluster ${c} in the sandbox`);
  const token = (await cs.kubectl(c, ['-n', 'isthmus-system', 'create', 'token', sa, '--duration', '24h'])).trim();
  const admin = JSON.parse(readFileSync(join(cluster.dir, 'kubelet.kubeconfig'), 'utf8')) as { clusters: { cluster: { 'certificate-authority-data': string } }[] };
  const config = {
    apiVersion: 'v1', kind: 'Config', 'current-context': sa,
    clusters: [{ name: c, cluster: { server: cluster.server, 'certificate-authority-data': admin.clusters[0]?.cluster['certificate-authority-data'] } }],
    users: [{ name: sa, user: { token } }],
    contexts: [{ name: sa, context: { cluster: c, user: sa } }],
  };
  const file = cs.path(`${sa}-${c}.kubeconfig`);
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return file;
}

/**
 * The sandbox a cross-cluster MCS run needs: `clusters` clusters of 2 nodes, a wireguard
 * gateway on each cluster's first node, a route agent on both nodes, the MCS CRDs and
 * ClusterProperties; returns once every gateway is connected to the others and every route
 * agent routes them without errors.
 */
export async function upWithRoutes(cs: Clusterset, clusters: readonly string[], portBase: number, proxyMinSyncMs?: number): Promise<void> {
  const others = (c: string): string[] => clusters.filter((x) => x !== c);
  await cs.up({ clusters: clusters.length, gateways: 1, nodes: 2, nat: [], portBase, ...(proxyMinSyncMs === undefined ? {} : { proxyMinSyncMs }) });
  await installMcsApi(cs, clusters);
  for (const c of clusters) {
    await cs.startGateway(c, 0, 'wireguard');
    for (const i of [0, 1]) cs.startRouteAgent(c, i);
  }
  for (const c of clusters) await cs.connected(c, `${c}-n1`, others(c));
  for (const c of clusters) {
    for (const i of [0, 1]) {
      const node = cs.node(c, i).name;
      await eventually(`${node} routes ${others(c).join(', ')}`, async () => {
        const s = (await cs.routeAgent(c, node).catch(() => undefined))?.status;
        return (s?.remotes ?? []).map((r) => r.cluster).sort().join(',') === others(c).join(',') && (s?.errors ?? []).length === 0 ? true : undefined;
      });
    }
  }
}
