import { join } from 'node:path';
import type { CommandRunner } from '../core/index.ts';
import { resolveNetns } from './exec.ts';
import type { SandboxState } from './state.ts';
import { kubeconfigPath } from './state.ts';
import { kubeBinDir } from './versions.ts';

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
          template: { metadata: { labels: { app: 'echo' } }, spec: { containers: [{ name: 'echo', image: 'isthmus/echo:dev', ports: [{ containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 2 } }] } },
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'demo' }, spec: { selector: { app: 'echo' }, ports: servicePorts } },
    ],
  });
}

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
  out('\nGateways and cables between the clusters: see "Gateways" in the README. Pod-to-pod traffic across clusters and clusterset.local DNS arrive with the route agent and the MCS API.');
}
