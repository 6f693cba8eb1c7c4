import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Pinned versions, read from package.json's "isthmus" field so the shell set-up
 * and the TypeScript agree, and where the set-up caches the binaries it builds.
 */
export interface Pins {
  readonly kubernetes: string;
  readonly node: string;
  readonly coredns: string;
}

/** The checkout's top folder: the nearest parent with a package.json (works from dist/ too). */
export function projectRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export function pins(): Pins {
  const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { isthmus?: Partial<Pins> };
  return {
    kubernetes: pkg.isthmus?.kubernetes ?? 'v1.36.3',
    node: pkg.isthmus?.node ?? '24.21.0',
    coredns: pkg.isthmus?.coredns ?? 'v1.15.0',
  };
}

export function cacheDir(): string {
  return process.env['ISTHMUS_CACHE'] ?? '/var/cache/isthmus';
}

/** Where ./setup puts kube-apiserver, kube-controller-manager, kube-proxy and kubectl. */
export function kubeBinDir(): string {
  return process.env['ISTHMUS_KUBE_BIN_DIR'] ?? join(cacheDir(), `kubernetes-${pins().kubernetes}`);
}

/** Where ./setup puts the CoreDNS binary (scripts/build-coredns.sh); $ISTHMUS_COREDNS overrides. */
export function corednsBinary(): string {
  return process.env['ISTHMUS_COREDNS'] ?? join(cacheDir(), `coredns-${pins().coredns}`, 'coredns');
}

export function etcdBinary(): string {
  return process.env['ISTHMUS_ETCD'] ?? '/usr/bin/etcd';
}
