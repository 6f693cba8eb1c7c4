import { join } from 'node:path';
import type { CommandRunner } from '../core/index.ts';
import type { SandboxState } from './state.ts';
import { kubeconfigPath } from './state.ts';
import { kubeBinDir } from './versions.ts';

/**
 * The newcomer's first run: shows what the sandbox can do today, with kubectl
 * against every cluster. Idempotent: objects are applied, not created.
 */
export async function runDemo(dir: string, state: SandboxState, runner: CommandRunner, out: (line: string) => void): Promise<void> {
  const kubectl = join(kubeBinDir(), 'kubectl');
  const kc = kubeconfigPath(dir);
  const k = async (ctx: string, args: string[], input?: string): Promise<string> =>
    (await runner.run(kubectl, ['--kubeconfig', kc, '--context', ctx, ...args], input === undefined ? {} : { input })).stdout;
  for (const c of state.clusters) {
    out(`\n== ${c.name}: ${c.server} (pods ${c.podCidr}, services ${c.serviceCidr})`);
    out((await k(c.name, ['version', '-o', 'json']).then((v) => `server ${(JSON.parse(v) as { serverVersion?: { gitVersion?: string } }).serverVersion?.gitVersion ?? '?'}`)));
    const manifest = JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } },
        {
          apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo', namespace: 'demo' },
          spec: {
            replicas: 2, selector: { matchLabels: { app: 'echo' } },
            template: { metadata: { labels: { app: 'echo' } }, spec: { containers: [{ name: 'echo', image: 'isthmus/echo:dev', ports: [{ containerPort: 8080 }] }] } },
          },
        },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'demo' }, spec: { selector: { app: 'echo' }, ports: [{ port: 8080 }] } },
      ],
    });
    out((await k(c.name, ['apply', '-f', '-'], manifest)).trim());
    await k(c.name, ['-n', 'demo', 'wait', '--for=jsonpath={.status.replicas}=2', 'deployment/echo', '--timeout=60s']);
    out((await k(c.name, ['-n', 'demo', 'get', 'deployment,replicaset,pods,service', '-o', 'wide'])).trimEnd());
  }
}
