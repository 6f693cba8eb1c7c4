import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import type { SandboxState } from './state.ts';
import { kubeconfigPath } from './state.ts';
import { projectRoot } from './versions.ts';

/**
 * Joins the sandbox's clusters into a clusterset with the commands a user runs (README,
 * "Joining clusters"): `isthmus broker deploy` in the first cluster (etcd and the broker as
 * pods, reachable on its gateway node's wan address), `isthmus broker token` for each
 * further cluster, and `isthmus join … --wait` of every cluster, which deploys the gateway,
 * the route agents, the MCS controller and DNS from deploy/ as pods. Each command's lines
 * are passed to `out`. Idempotent: a clusterset already connected is left as it is (and
 * each command is itself idempotent).
 */
export const CONNECT_DIR = 'clusterset';

export interface ConnectOptions {
  readonly dir: string;
  readonly state: SandboxState;
  readonly runner: CommandRunner;
  readonly driver: 'wireguard' | 'ipsec' | 'vxlan';
  readonly out: (line: string) => void;
}

export async function connectClusterset(o: ConnectOptions): Promise<void> {
  const base = join(o.dir, 'clusters', CONNECT_DIR);
  // written once every cable is up; `sandbox down` removes it with the folder
  const marker = join(base, 'connected');
  if (existsSync(marker)) {
    o.out('the clusterset is connected already');
    return;
  }
  await mkdir(base, { recursive: true, mode: 0o700 });
  const cli = join(projectRoot(), 'cli', 'main.ts');
  const kubeconfig = kubeconfigPath(o.dir);
  const isthmus = async (args: string[]): Promise<void> => {
    o.out(`\n$ isthmus ${args.join(' ')}`);
    const r = await o.runner.run(process.execPath, ['--no-warnings', cli, ...args, '--kubeconfig', kubeconfig], { allowFailure: true });
    for (const line of r.stdout.trimEnd().split('\n')) if (line !== '') o.out(line);
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `isthmus ${args[0] ?? ''} ${args[1] ?? ''} failed: ${r.stderr.trim()}`);
  };
  const [first, ...rest] = o.state.clusters;
  if (first === undefined) return;
  const info = (c: string): string => join(base, `broker-info-${c}.json`);
  await isthmus(['broker', 'deploy', '--context', first.name, '--service-type', 'NodePort', '--node-selector', 'isthmus.dev/gateway-capable=true',
    '--etcd-storage', 'emptyDir', '--cable-driver', o.driver, '--out', info(first.name)]);
  for (const c of rest) await isthmus(['broker', 'token', '--context', first.name, '--out', info(c.name)]);
  for (const c of o.state.clusters) await isthmus(['join', info(c.name), '--context', c.name, '--cluster-id', c.name, '--wait']);
  await writeFile(marker, `${new Date().toISOString()}\n`);
}
