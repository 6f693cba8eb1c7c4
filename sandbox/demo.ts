import { join } from 'node:path';
import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import { connectClusterset } from './connect.ts';
import { resolveNetns } from './exec.ts';
import type { SandboxState } from './state.ts';
import { kubeconfigPath } from './state.ts';
import { kubeBinDir, projectRoot } from './versions.ts';

/** The isthmus/echo container, ready once 8080 answers. */
const echoContainer = (name: string): object => ({ name, image: 'isthmus/echo:dev', ports: [{ containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2 } });

/**
 * The demo's objects in namespace `demo`: the `echo` Deployment (image isthmus/echo,
 * ready once 8080 answers) and its Service with `servicePorts`, as one kubectl List.
 */
export function echoManifest(replicas: number, servicePorts: readonly object[] = [{ port: 8080 }]): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } },
      {
        apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo', namespace: 'demo' },
        spec: {
          replicas, selector: { matchLabels: { app: 'echo' } },
          template: { metadata: { labels: { app: 'echo' } }, spec: { containers: [echoContainer('echo')] } },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'demo' }, spec: { selector: { app: 'echo' }, ports: servicePorts } },
    ],
  });
}

/**
 * A client pod pinned to `node` (no scheduler's choice: a Deployment's replicas may all land
 * on one node): `client-<node>` in `namespace`, labelled app=client (no Service selects it),
 * the echo image, ready once 8080 answers. Its namespace must exist.
 */
export function clientPodManifest(node: string, namespace = 'demo'): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: `client-${node}`, namespace, labels: { app: 'client' } },
    spec: { nodeName: node, containers: [echoContainer('client')] },
  });
}

interface EchoPod { metadata: { name: string }; status: { podIP?: string } }

/**
 * The newcomer's first run: shows what the sandbox does today, with kubectl and
 * real packets in every cluster: an echo Deployment and Service, a request from
 * one pod to the Service by its DNS name, and the answer naming the pod that
 * served it. Idempotent: objects are applied, not created.
 */
export async function runDemo(dir: string, state: SandboxState, runner: CommandRunner, out: (line: string) => void): Promise<void> {
  const kubectl = join(kubeBinDir(), 'kubectl');
  const kc = kubeconfigPath(dir);
  const k = async (ctx: string, args: string[], input?: string): Promise<string> =>
    (await runner.run(kubectl, ['--kubeconfig', kc, '--context', ctx, ...args], input === undefined ? {} : { input })).stdout;
  for (const c of state.clusters) {
    out(`\n== ${c.name}: ${c.server} (pods ${c.podCidr}, services ${c.serviceCidr}, nodes ${c.nodes.map((n) => n.name).join(' ')})`);
    const manifest = echoManifest(2);
    out((await k(c.name, ['apply', '-f', '-'], manifest)).trim());
    await k(c.name, ['-n', 'demo', 'rollout', 'status', 'deployment/echo', '--timeout=60s']);
    out((await k(c.name, ['-n', 'demo', 'get', 'pods,service', '-o', 'wide'])).trimEnd());
    const pod = (await k(c.name, ['-n', 'demo', 'get', 'pods', '-l', 'app=echo', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    const netns = await resolveNetns(dir, c.name, pod, 'demo');
    const dig = await runner.run('ip', ['netns', 'exec', netns, 'dig', '+short', '+search', 'echo'], { allowFailure: true });
    out(`from pod ${pod}: dig echo → ${dig.stdout.trim() || dig.stderr.trim()}`);
    // kube-proxy programs a new Service within a second or two; try a few times
    let curl = { code: 1, stdout: '', stderr: '' };
    for (let i = 0; i < 20 && curl.code !== 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500));
      curl = await runner.run('ip', ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '3', 'http://echo:8080/demo'], { allowFailure: true });
    }
    out(`from pod ${pod}: curl http://echo:8080/demo → ${curl.stdout.trim() || `failed: ${curl.stderr.trim()}`}`);
  }
  if (state.clusters.length < 2) {
    out('\nOne cluster only: start the sandbox with --clusters 3 to see the clusters joined.');
    return;
  }
  out('\n== joining the clusters into a clusterset');
  await connectClusterset({ dir, state, runner, driver: 'wireguard', out });
  for (const c of state.clusters) out((await k(c.name, ['-n', 'isthmus-system', 'get', 'gateways,routeagents'])).trimEnd());
  // from a pod on a node that is not a gateway: to a pod and to the Service of every other cluster
  const c1 = state.clusters[0];
  const plain = c1?.nodes.find((n) => n.wan === undefined);
  if (c1 === undefined || plain === undefined) {
    out('\nevery node of c1 is a gateway node: start the sandbox with more --nodes than --gateways to see a pod on a plain node');
    return;
  }
  await k(c1.name, ['apply', '-f', '-'], clientPodManifest(plain.name));
  await k(c1.name, ['-n', 'demo', 'wait', '--for=condition=Ready', `pod/client-${plain.name}`, '--timeout=60s']);
  const client = JSON.parse(await k(c1.name, ['-n', 'demo', 'get', 'pod', `client-${plain.name}`, '-o', 'json'])) as EchoPod;
  const netns = await resolveNetns(dir, c1.name, client.metadata.name, 'demo');
  out(`\n== from pod ${client.metadata.name} (${client.status.podIP ?? '?'}) on ${plain.name}, a node that is not a gateway, in ${c1.name}:`);
  for (const c of state.clusters.slice(1)) {
    const remote = JSON.parse(await k(c.name, ['-n', 'demo', 'get', 'pods', '-l', 'app=echo', '-o', 'json'])) as { items: EchoPod[] };
    const svc = (await k(c.name, ['-n', 'demo', 'get', 'service', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    for (const [what, target] of [[`pod ${remote.items[0]?.metadata.name ?? '?'} in ${c.name}`, remote.items[0]?.status.podIP ?? ''], [`Service echo in ${c.name} (ClusterIP)`, svc]] as const) {
      let curl = { code: 1, stdout: '', stderr: '' };
      for (let i = 0; i < 20 && curl.code !== 0; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 500));
        curl = await runner.run('ip', ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '3', `http://${target}:8080/cross-cluster`], { allowFailure: true });
      }
      out(`  curl http://${target}:8080 (${what}) → ${curl.stdout.trim() || `failed: ${curl.stderr.trim()}`}`);
    }
  }
  out('\nThe answers name the client as the pod\'s own address: nothing masquerades between clusters.');
  out(`\n== exporting Service echo from ${state.clusters.slice(1).map((c) => c.name).join(' and ')} (ServiceExport), then by its clusterset name from the same pod:`);
  const cli = join(projectRoot(), 'cli', 'main.ts');
  for (const c of state.clusters.slice(1)) {
    const r = await runner.run(process.execPath, ['--no-warnings', cli, 'export', 'service', 'echo', '-n', 'demo', '--context', c.name, '--kubeconfig', kc, '--wait']);
    out(`  ${c.name}: ${r.stdout.trim()}`);
  }
  const answeredBy = new Set<string>();
  for (let i = 0; i < 40 && answeredBy.size < state.clusters.length - 1; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 500));
    const curl = await runner.run('ip', ['netns', 'exec', netns, 'curl', '-sS', '--max-time', '3', 'http://echo.demo.svc.clusterset.local:8080/clusterset'], { allowFailure: true });
    if (curl.code !== 0) continue;
    const cluster = /"cluster":"([^"]+)"/.exec(curl.stdout)?.[1] ?? '?';
    if (!answeredBy.has(cluster)) out(`  curl http://echo.demo.svc.clusterset.local:8080 → ${curl.stdout.trim()}`);
    answeredBy.add(cluster);
  }
  out(`  answered by ${[...answeredBy].sort().join(' and ') || 'no cluster yet (try the curl again in a moment)'}`);
  const second = state.clusters[1];
  if (second !== undefined) {
    out(`\n== what the clusterset looks like from ${c1.name}:\n$ isthmus show all --context ${c1.name}`);
    const show = await runner.run(process.execPath, ['--no-warnings', cli, 'show', 'all', '--context', c1.name, '--kubeconfig', kc], { allowFailure: true });
    out((show.stdout || show.stderr).trimEnd());
    out(`\n== the connectivity and service discovery checks a user runs after joining (pods of its own, removed after):\n$ isthmus verify --context ${c1.name} --tocontext ${second.name}`);
    const verify = await runner.run(process.execPath, ['--no-warnings', cli, 'verify', '--context', c1.name, '--tocontext', second.name, '--kubeconfig', kc], { allowFailure: true });
    out((verify.stdout + verify.stderr).trimEnd());
    if (verify.code !== 0) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `isthmus verify --context ${c1.name} --tocontext ${second.name} failed (exit ${verify.code}): see above`);
  }
  out('\nTry next: `isthmus show imports -n demo --context c1`, `kubectl --context c1 -n isthmus-system get pods,gateways,routeagents -o wide`,');
  out('or delete the active gateway pod of a cluster and watch the cables come back (`kubectl --context c2 -n isthmus-system delete pod -l app.kubernetes.io/name=isthmus-gateway`).');
}
