import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import { WAN_HOST_IP } from './plan.ts';
import type { SandboxState } from './state.ts';
import { kubeconfigPath } from './state.ts';
import { kubeBinDir, projectRoot } from './versions.ts';

/**
 * Joins the sandbox's clusters into a clusterset the way the e2e tests do, for the demo:
 * the clusterset CA and certificates (`isthmus certs`), a real etcd and `isthmus broker` on
 * the host's wan address, the CRDs and RBAC of deploy/, `isthmus gateway` on every
 * gateway-capable node and `isthmus route-agent` on every node, each in its node's network
 * namespace with a token of its own ServiceAccount. Every process names the sandbox's
 * `clusters/` folder on its command line, so `sandbox down` stops it. Idempotent: a
 * clusterset already connected is left as it is.
 */
export const CONNECT_DIR = 'clusterset';
const BROKER_PORT = 7443;

export interface ConnectOptions {
  readonly dir: string;
  readonly state: SandboxState;
  readonly runner: CommandRunner;
  readonly driver: 'wireguard' | 'ipsec' | 'vxlan';
  readonly out: (line: string) => void;
}

export async function connectClusterset(o: ConnectOptions): Promise<void> {
  const base = join(o.dir, 'clusters', CONNECT_DIR);
  const cli = join(projectRoot(), 'cli', 'main.ts');
  const kubectl = join(kubeBinDir(), 'kubectl');
  const kc = kubeconfigPath(o.dir);
  const k = async (ctx: string, args: string[], input?: string): Promise<string> =>
    (await o.runner.run(kubectl, ['--kubeconfig', kc, '--context', ctx, ...args], input === undefined ? {} : { input })).stdout;
  const isthmus = (args: string[]): Promise<unknown> => o.runner.run(process.execPath, ['--no-warnings', cli, ...args]);
  const start = (name: string, command: string, args: string[]): void => {
    const log = openSync(join(base, `${name}.log`), 'a');
    spawn(command, args, { stdio: ['ignore', log, log], detached: true }).unref();
  };
  // written once every cable is up; `sandbox down` removes it with the folder
  const marker = join(base, 'connected');
  if (existsSync(marker)) {
    o.out('the clusterset is connected already');
    return;
  }
  await mkdir(base, { recursive: true, mode: 0o700 });
  o.out('clusterset CA, broker certificate and one certificate per cluster (isthmus certs) ...');
  await isthmus(['certs', 'ca', 'create', '--out', join(base, 'ca')]);
  await isthmus(['certs', 'issue', '--ca', join(base, 'ca'), '--server', '--san', WAN_HOST_IP, '--out', join(base, 'broker')]);
  for (const c of o.state.clusters) await isthmus(['certs', 'issue', '--ca', join(base, 'ca'), '--cluster', c.name, '--out', join(base, c.name)]);
  o.out(`etcd and the broker on ${WAN_HOST_IP}:${BROKER_PORT} ...`);
  start('etcd', '/usr/bin/etcd', ['--data-dir', join(base, 'etcd'), '--listen-client-urls', 'http://127.0.0.1:23790',
    '--advertise-client-urls', 'http://127.0.0.1:23790', '--listen-peer-urls', 'http://127.0.0.1:23800', '--log-level', 'warn']);
  start('broker', process.execPath, ['--no-warnings', cli, 'broker', '--etcd', 'http://127.0.0.1:23790', '--listen', `${WAN_HOST_IP}:${BROKER_PORT}`, '--tls-dir', join(base, 'broker')]);
  const deploy = join(projectRoot(), 'deploy');
  for (const c of o.state.clusters) {
    for (const f of ['crds/gateways.isthmus.dev.json', 'crds/routeagents.isthmus.dev.json', 'namespace.yaml', 'gateway/rbac.yaml', 'route-agent/rbac.yaml']) {
      await k(c.name, ['apply', '-f', join(deploy, f)]);
    }
    await k(c.name, ['wait', '--for=condition=Established', 'crd/gateways.isthmus.dev', 'crd/routeagents.isthmus.dev', '--timeout=30s']);
    const admin = JSON.parse(await readFile(join(c.dir, 'kubelet.kubeconfig'), 'utf8')) as { clusters: { cluster: { 'certificate-authority-data': string } }[] };
    for (const account of ['isthmus-gateway', 'isthmus-route-agent']) {
      const token = (await k(c.name, ['-n', 'isthmus-system', 'create', 'token', account, '--duration', '24h'])).trim();
      const config = {
        apiVersion: 'v1', kind: 'Config', 'current-context': account,
        clusters: [{ name: c.name, cluster: { server: c.server, 'certificate-authority-data': admin.clusters[0]?.cluster['certificate-authority-data'] } }],
        users: [{ name: account, user: { token } }],
        contexts: [{ name: account, context: { cluster: c.name, user: account, namespace: 'isthmus-system' } }],
      };
      await writeFile(join(base, `${account}-${c.name}.kubeconfig`), JSON.stringify(config), { mode: 0o600 });
    }
    for (const n of c.nodes) {
      if (n.wan !== undefined) {
        // the gateway's health-check address: the first address of the node's pod CIDR, on lo
        const podCidr = (await k(c.name, ['get', 'node', n.name, '-o', 'jsonpath={.spec.podCIDR}'])).trim();
        const health = podCidr.replace(/\.0\/\d+$/, '.1');
        await o.runner.run('ip', ['-n', n.netns, 'addr', 'replace', `${health}/32`, 'dev', 'lo']);
        start(`gateway-${n.name}`, 'ip', ['netns', 'exec', n.netns, process.execPath, '--no-warnings', cli, 'gateway',
          '--cluster', c.name, '--hostname', n.name, '--broker', `${WAN_HOST_IP}:${BROKER_PORT}`, '--broker-tls-dir', join(base, c.name),
          '--driver', o.driver, '--private-ip', n.wan.ip, '--pod-cidrs', c.podCidr, '--service-cidrs', c.serviceCidr, '--health-check-ip', health,
          '--kubeconfig', join(base, `isthmus-gateway-${c.name}.kubeconfig`), '--state-dir', join(base, `state-${n.name}`),
          ...(o.driver === 'wireguard' ? ['--private-sockets'] : [])]);
      }
      start(`route-agent-${n.name}`, 'ip', ['netns', 'exec', n.netns, process.execPath, '--no-warnings', cli, 'route-agent',
        '--cluster', c.name, '--node', n.name, '--pod-cidrs', c.podCidr, '--service-cidrs', c.serviceCidr,
        '--kubeconfig', join(base, `isthmus-route-agent-${c.name}.kubeconfig`)]);
    }
  }
  o.out(`gateways (${o.driver}) on the gateway-capable nodes, a route agent on every node; waiting for every cable ...`);
  const deadline = Date.now() + 120_000;
  for (const c of o.state.clusters) {
    for (;;) {
      const want = o.state.clusters.length - 1;
      const summaries = (await k(c.name, ['-n', 'isthmus-system', 'get', 'gateways.isthmus.dev', '-o', 'jsonpath={range .items[?(@.status.haStatus=="active")]}{.status.summary}{"\\n"}{end}']).catch(() => '')).trim();
      if (summaries === `${want}/${want}`) break;
      if (Date.now() > deadline) {
        throw new IsthmusError(ErrorCodes.TIMEOUT, `${c.name}'s gateway did not connect every cable within 120 s (it says "${summaries}"); its log: ${join(base, `gateway-${c.nodes[0]?.name ?? ''}.log`)}`);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await writeFile(marker, `${new Date().toISOString()}\n`);
}
