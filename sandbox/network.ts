import type { CommandRunner } from '../core/index.ts';

/**
 * The sandbox's wiring, with iproute2 and iptables run for real. Every function
 * is idempotent: it checks before it adds, so `up` can be retried and the
 * kubelet can re-apply after a restart.
 *
 * A node is a network namespace with `eth0` on its cluster's bridge and a default
 * route to the host (the control-plane address). A pod is a namespace with `eth0`
 * holding its /32 and a default route to 169.254.1.1, answered by proxy ARP on the
 * node's end of the veth; the node routes the /32 to that veth (routed, no bridge).
 */
export const POD_GATEWAY = '169.254.1.1';

async function exists(runner: CommandRunner, args: readonly string[]): Promise<boolean> {
  return (await runner.run('ip', args, { allowFailure: true })).code === 0;
}

export async function netnsExists(runner: CommandRunner, ns: string): Promise<boolean> {
  return exists(runner, ['netns', 'pids', ns]);
}

export async function addNetns(runner: CommandRunner, ns: string): Promise<void> {
  if (!(await netnsExists(runner, ns))) await runner.run('ip', ['netns', 'add', ns]);
  await runner.run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** Kills every process in `ns`, then deletes it. No error when it is gone already. */
export async function deleteNetns(runner: CommandRunner, ns: string): Promise<void> {
  const pids = await runner.run('ip', ['netns', 'pids', ns], { allowFailure: true });
  if (pids.code !== 0) return;
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await runner.run('ip', ['netns', 'delete', ns], { allowFailure: true });
}

export async function sysctl(runner: CommandRunner, ns: string, key: string, value: string): Promise<void> {
  await runner.run('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/** Adds an iptables rule in `ns` unless it is there already (`-C` first). */
export async function ensureIptables(runner: CommandRunner, ns: string, table: string, chain: string, rule: readonly string[]): Promise<void> {
  const check = await runner.run('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', table, '-C', chain, ...rule], { allowFailure: true });
  if (check.code !== 0) await runner.run('ip', ['netns', 'exec', ns, 'iptables', '-w', '-t', table, '-A', chain, ...rule]);
}

/** A veth with `outer` in `outerNs` (or the host when undefined) and `inner` named `innerName` in `innerNs`. */
export async function addVeth(runner: CommandRunner, outer: string, outerNs: string | undefined, innerName: string, innerNs: string): Promise<void> {
  const present = outerNs === undefined ? await exists(runner, ['link', 'show', outer]) : await exists(runner, ['-n', outerNs, 'link', 'show', outer]);
  if (present) return;
  await runner.run('ip', ['link', 'add', 'name', outer, ...(outerNs === undefined ? [] : ['netns', outerNs]), 'type', 'veth', 'peer', 'name', innerName, 'netns', innerNs]);
}

export async function addAddress(runner: CommandRunner, ns: string | undefined, dev: string, cidr: string): Promise<void> {
  const scope = ns === undefined ? [] : ['-n', ns];
  const out = await runner.run('ip', [...scope, '-o', 'addr', 'show', 'dev', dev]);
  if (!out.stdout.includes(` ${cidr} `)) await runner.run('ip', [...scope, 'addr', 'add', cidr, 'dev', dev]);
  await runner.run('ip', [...scope, 'link', 'set', dev, 'up']);
}

export async function replaceRoute(runner: CommandRunner, ns: string, route: readonly string[]): Promise<void> {
  await runner.run('ip', ['-n', ns, 'route', 'replace', ...route]);
}

export interface NodeWiring {
  readonly netns: string;
  /** The host end of the node's veth, enslaved to `bridge`. */
  readonly hostVeth: string;
  readonly bridge: string;
  /** Node address with prefix, e.g. 172.30.1.11/24. */
  readonly address: string;
  /** The host's address on the segment: the node's default route. */
  readonly gateway: string;
  readonly podCidr: string;
}

/** A node namespace on its cluster's bridge, forwarding, masquerading its pods' traffic to the host. */
export async function wireNode(runner: CommandRunner, n: NodeWiring): Promise<void> {
  await addNetns(runner, n.netns);
  await addVeth(runner, n.hostVeth, undefined, 'eth0', n.netns);
  await runner.run('ip', ['link', 'set', n.hostVeth, 'master', n.bridge, 'up']);
  await addAddress(runner, n.netns, 'eth0', n.address);
  await replaceRoute(runner, n.netns, ['default', 'via', n.gateway, 'dev', 'eth0']);
  await sysctl(runner, n.netns, 'net.ipv4.ip_forward', '1');
  await sysctl(runner, n.netns, 'net.ipv4.conf.all.rp_filter', '0');
  // The host (control plane) has no routes to pods: pods reach it with the node's address.
  await ensureIptables(runner, n.netns, 'nat', 'POSTROUTING', ['-s', n.podCidr, '-d', `${n.gateway}/32`, '-j', 'MASQUERADE']);
}

export interface PodWiring {
  readonly nodeNetns: string;
  readonly podNetns: string;
  /** The node end of the pod's veth. */
  readonly nodeVeth: string;
  readonly ip: string;
}

export async function wirePod(runner: CommandRunner, p: PodWiring): Promise<void> {
  await addNetns(runner, p.podNetns);
  await addVeth(runner, p.nodeVeth, p.nodeNetns, 'eth0', p.podNetns);
  await runner.run('ip', ['-n', p.nodeNetns, 'link', 'set', p.nodeVeth, 'up']);
  await sysctl(runner, p.nodeNetns, `net.ipv4.conf.${p.nodeVeth}.proxy_arp`, '1');
  await replaceRoute(runner, p.nodeNetns, [`${p.ip}/32`, 'dev', p.nodeVeth, 'scope', 'link']);
  await addAddress(runner, p.podNetns, 'eth0', `${p.ip}/32`);
  await replaceRoute(runner, p.podNetns, [POD_GATEWAY, 'dev', 'eth0', 'scope', 'link']);
  await replaceRoute(runner, p.podNetns, ['default', 'via', POD_GATEWAY, 'dev', 'eth0']);
}

export async function unwirePod(runner: CommandRunner, p: PodWiring): Promise<void> {
  await runner.run('ip', ['-n', p.nodeNetns, 'route', 'delete', `${p.ip}/32`, 'dev', p.nodeVeth], { allowFailure: true });
  await runner.run('ip', ['-n', p.nodeNetns, 'link', 'delete', p.nodeVeth], { allowFailure: true });
  await deleteNetns(runner, p.podNetns);
}

export interface NatRouterWiring {
  readonly netns: string;
  readonly wanBridge: string;
  /** Host end of the router's veth on the wan bridge. */
  readonly hostVeth: string;
  /** The router's wan address with prefix, e.g. 172.29.0.13/24. */
  readonly wanAddress: string;
  /** The router's address on its inside bridge, with prefix, e.g. 172.28.3.1/24. */
  readonly routerInside: string;
}

/** Bridge in the NAT router namespace where its gateway nodes' wan0 links attach. */
const INSIDE_BRIDGE = 'inside';

/**
 * A NAT router: a namespace on the wan bridge with an inside bridge, forwarding and
 * masquerading whatever leaves through its wan0.
 */
export async function wireNatRouter(runner: CommandRunner, r: NatRouterWiring): Promise<void> {
  await addNetns(runner, r.netns);
  await addVeth(runner, r.hostVeth, undefined, 'wan0', r.netns);
  await runner.run('ip', ['link', 'set', r.hostVeth, 'master', r.wanBridge, 'up']);
  await addAddress(runner, r.netns, 'wan0', r.wanAddress);
  if (!(await exists(runner, ['-n', r.netns, 'link', 'show', INSIDE_BRIDGE]))) {
    await runner.run('ip', ['-n', r.netns, 'link', 'add', INSIDE_BRIDGE, 'type', 'bridge']);
  }
  await addAddress(runner, r.netns, INSIDE_BRIDGE, r.routerInside);
  await sysctl(runner, r.netns, 'net.ipv4.ip_forward', '1');
  await ensureIptables(runner, r.netns, 'nat', 'POSTROUTING', ['-o', 'wan0', '-j', 'MASQUERADE']);
}

export interface WanWiring {
  /** The gateway node's namespace. */
  readonly netns: string;
  /** The other end of the node's wan0: a host veth on the wan bridge, or one in the router. */
  readonly peerVeth: string;
  /** The node's wan0 address with prefix, e.g. 172.29.0.11/24 (or 172.28.3.10/24 behind NAT). */
  readonly address: string;
  readonly wanBridge: string;
  /** Behind NAT: the router namespace, its inside address (no prefix) and the wan CIDR routed through it. */
  readonly nat?: { readonly netns: string; readonly routerIp: string; readonly wanCidr: string };
}

/**
 * Joins a gateway node to the wan segment: directly (its `wan0` on the wan bridge), or
 * on the inside bridge of its cluster's NAT router (see wireNatRouter).
 */
export async function wireWan(runner: CommandRunner, w: WanWiring): Promise<void> {
  if (w.nat === undefined) {
    await addVeth(runner, w.peerVeth, undefined, 'wan0', w.netns);
    await runner.run('ip', ['link', 'set', w.peerVeth, 'master', w.wanBridge, 'up']);
    await addAddress(runner, w.netns, 'wan0', w.address);
    return;
  }
  const r = w.nat;
  await addVeth(runner, w.peerVeth, r.netns, 'wan0', w.netns);
  await runner.run('ip', ['-n', r.netns, 'link', 'set', w.peerVeth, 'master', INSIDE_BRIDGE, 'up']);
  await addAddress(runner, w.netns, 'wan0', w.address);
  await replaceRoute(runner, w.netns, [r.wanCidr, 'via', r.routerIp, 'dev', 'wan0']);
}

export interface WanEgress {
  /** The cluster's first gateway node: its namespace and address on the node segment. */
  readonly gatewayNetns: string;
  readonly gatewayIp: string;
  /** The cluster's other nodes with a wan link of their own (more gateway nodes). */
  readonly otherWanNetns: readonly string[];
  /** The cluster's nodes without a wan link. */
  readonly otherNetns: readonly string[];
  readonly podCidr: string;
  readonly nodeCidr: string;
  readonly wanCidr: string;
}

/**
 * Egress to the wan for every node and pod of a cluster, as a cloud network gives nodes
 * a way out: the nodes without a wan link route the wan CIDR to the first gateway node;
 * every node with one masquerades node and pod sources leaving wan0 for the wan CIDR only
 * (so a pod reaches a broker on the wan and its answer comes back the same way, as with a
 * real CNI's outgoing NAT — a pod's own address would be answered through the cables;
 * traffic between the clusters' pods, addressed to pod and service CIDRs, is never touched).
 */
export async function wireWanEgress(runner: CommandRunner, e: WanEgress): Promise<void> {
  for (const ns of [e.gatewayNetns, ...e.otherWanNetns]) {
    for (const src of [e.podCidr, e.nodeCidr]) {
      await ensureIptables(runner, ns, 'nat', 'POSTROUTING', ['-s', src, '-d', e.wanCidr, '-o', 'wan0', '-j', 'MASQUERADE']);
    }
  }
  for (const ns of e.otherNetns) await replaceRoute(runner, ns, [e.wanCidr, 'via', e.gatewayIp, 'dev', 'eth0']);
}
