import { existsSync } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import {
  ErrorCodes, IsthmusError, SETUP_HINT, findOverlap, type CommandRunner,
} from '../core/index.ts';
import { WAN_CIDR, type ClusterPlan } from './plan.ts';

/**
 * Checks made before `up` changes anything. Each failure names what is wrong
 * and what to do about it.
 */
export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new IsthmusError(
      ErrorCodes.NOT_ROOT,
      `${what} needs root: it creates network namespaces, veth pairs and routes and runs kube-proxy, which need CAP_NET_ADMIN. Run it with sudo or as root.`,
    );
  }
}

export interface Binaries {
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubeProxy: string;
  readonly kubectl: string;
}

export function binariesIn(kubeDir: string, etcd: string): Binaries {
  return {
    etcd,
    kubeApiserver: join(kubeDir, 'kube-apiserver'),
    kubeControllerManager: join(kubeDir, 'kube-controller-manager'),
    kubeProxy: join(kubeDir, 'kube-proxy'),
    kubectl: join(kubeDir, 'kubectl'),
  };
}

export async function requireBinaries(bins: Binaries): Promise<void> {
  const missing: string[] = [];
  for (const path of Object.values(bins)) {
    try {
      await access(path, constants.X_OK);
    } catch {
      missing.push(path);
    }
  }
  if (missing.length > 0) {
    throw new IsthmusError(ErrorCodes.MISSING_DEPENDENCY, `missing ${missing.join(', ')}: ${SETUP_HINT}`, { context: { missing } });
  }
}

/** Resolves when `port` can be bound on `host`, else throws PORT_IN_USE naming it. */
export function requirePortFree(port: number, host: string, owner: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new IsthmusError(
          ErrorCodes.PORT_IN_USE,
          `port ${host}:${port} (${owner}) is already in use (${err.code ?? err.message}); stop what holds it (ss -ltnp 'sport = :${port}') or choose another --port-base`,
          { context: { port } },
        ),
      );
    });
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve()));
  });
}

export async function requirePortsFree(plans: readonly ClusterPlan[]): Promise<void> {
  for (const c of plans) {
    for (const [what, port] of Object.entries(c.ports)) await requirePortFree(port, '0.0.0.0', `${c.name} ${what}`);
  }
}

/** Destinations of every route on the host (all tables), as CIDR strings. */
export async function hostRoutes(runner: CommandRunner): Promise<string[]> {
  const out = await runner.run('ip', ['-j', 'route', 'show', 'table', 'all']);
  const routes = JSON.parse(out.stdout || '[]') as { dst?: string; type?: string }[];
  const cidrs: string[] = [];
  for (const r of routes) {
    if (r.dst === undefined || r.dst === 'default' || r.type === 'local' || r.type === 'broadcast' || r.type === 'multicast') continue;
    if (r.dst.includes(':')) continue;
    cidrs.push(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
  }
  return cidrs;
}

/** Throws CIDR_IN_USE when a cluster's pod or service CIDR overlaps a route the host already has. */
export async function requireCidrsFree(plans: readonly ClusterPlan[], runner: CommandRunner): Promise<void> {
  const routes = await hostRoutes(runner);
  for (const c of plans) {
    const hit = findOverlap([c.podCidr, c.serviceCidr, c.nodeCidr, WAN_CIDR], routes);
    if (hit !== undefined) {
      throw new IsthmusError(
        ErrorCodes.CIDR_IN_USE,
        `${c.name}'s CIDR ${hit[0]} overlaps the host route ${hit[1]}; remove that route (or run "isthmus sandbox down" if an earlier sandbox left it) or run the sandbox where 10.0.0.0/8 and 172.30.0.0/16 are free`,
        { context: { cidr: hit[0], route: hit[1] } },
      );
    }
  }
}

/**
 * kube-proxy's IPVS mode needs the kernel's ip_vs module; a kernel without it (no
 * /proc/net/ip_vs) is said so before anything starts, instead of a kube-proxy that
 * falls over later. iptables and nftables modes need nothing more than the packages.
 */
export function requireProxyMode(mode: string, ipvsPresent = existsSync('/proc/net/ip_vs')): void {
  if (mode === 'ipvs' && !ipvsPresent) {
    throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, 'kube-proxy IPVS mode needs the kernel\'s ip_vs module, which this kernel does not have (no /proc/net/ip_vs): use --proxy-mode iptables or nftables');
  }
}
