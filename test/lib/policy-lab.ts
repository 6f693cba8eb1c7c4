import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * A three-namespace lab for the policy table against the real kernel (policy's netns test
 * and bench/policy.ts): traffic stays inside namespaces this makes, and cleanup() removes them.
 *
 *   rem: `remoteIps` on lo (remote pod addresses) and 172.31.<net>.2
 *     └ eth0 ── r0 [node: forwards; routes 10.2/16 and 10.3/16 to rem] r1 ── pod 10.1.0.3
 */
export interface PolicyLab {
  readonly ns: { readonly rem: string; readonly node: string; readonly pod: string };
  /** Runs a command in one of the lab's namespaces; returns its stdout. */
  sh(ns: string, ...args: string[]): string;
  cleanup(): void;
}

export function policyLab(prefix: string, net: number, remoteIps: readonly string[]): PolicyLab {
  const tag = `${prefix}-${randomBytes(3).toString('hex')}`;
  const ns = { rem: `${tag}-rem`, node: `${tag}-node`, pod: `${tag}-pod` } as const;
  const cleanup = (): void => {
    for (const n of Object.values(ns)) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
      } catch {
        // not made, or gone
      }
    }
  };
  try {
    for (const n of Object.values(ns)) {
      execFileSync('ip', ['netns', 'add', n]);
      execFileSync('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    execFileSync('ip', ['-n', ns.node, 'link', 'add', 'r0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.rem]);
    execFileSync('ip', ['-n', ns.node, 'link', 'add', 'r1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.pod]);
    for (const [n, dev, addr] of [[ns.node, 'r0', `172.31.${net}.1/24`], [ns.rem, 'eth0', `172.31.${net}.2/24`], [ns.node, 'r1', '10.1.0.1/24'], [ns.pod, 'eth0', '10.1.0.3/24']] as const) {
      execFileSync('ip', ['-n', n, 'addr', 'add', addr, 'dev', dev]);
      execFileSync('ip', ['-n', n, 'link', 'set', dev, 'up']);
    }
    for (const a of remoteIps) execFileSync('ip', ['-n', ns.rem, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    execFileSync('ip', ['-n', ns.rem, 'route', 'add', 'default', 'via', `172.31.${net}.1`]);
    execFileSync('ip', ['-n', ns.pod, 'route', 'add', 'default', 'via', '10.1.0.1']);
    for (const c of ['10.2.0.0/16', '10.3.0.0/16']) execFileSync('ip', ['-n', ns.node, 'route', 'add', c, 'via', `172.31.${net}.2`]);
    execFileSync('ip', ['netns', 'exec', ns.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  } catch (err) {
    cleanup();
    throw err;
  }
  return {
    ns,
    sh: (n, ...args) => execFileSync('ip', ['netns', 'exec', n, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    cleanup,
  };
}
