import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SystemRunner, type CommandRunner } from '../../core/index.ts';

/**
 * A small lab for the IPsec cable tests and benchmark: one network namespace per
 * "gateway" (`ist-ipsec-<rnd>-<id>`), joined by a bridge that lives in a namespace of
 * its own (`ist-ipsec-<rnd>-br`), so no traffic leaves namespaces the lab made.
 * Gateway n has underlay address 192.168.77.(10+n)/24 on `eth0` and two "cluster CIDRs",
 * as a real cluster has pods and services: 10.(60+n).0.0/16, of which 10.(60+n).0.1/32
 * sits on `lo` (the kernel's dummy module is not available here), and 10.(160+n).0.0/16,
 * in which the gateway itself holds no address (as a node holds none in its service
 * CIDR): a "pod" namespace `<ns>-pod` at 10.(160+n).0.10 sits behind the gateway on a
 * veth (`pod0`, which has only the link-local 169.254.1.1), and the gateway forwards for
 * it. Every path it creates is under one temp folder.
 */
export interface LabNode {
  readonly id: string;
  readonly ns: string;
  readonly underlayIp: string;
  /** The first cluster CIDR and the gateway's address in it (on lo). */
  readonly cidr: string;
  readonly cidrIp: string;
  /** Both cluster CIDRs: [cidr, cidr2]. */
  readonly cidrs: readonly string[];
  /** The second cluster CIDR, in which only the pod namespace has an address. */
  readonly cidr2: string;
  readonly podNs: string;
  readonly podIp: string;
  /** A folder for this gateway's charon. */
  readonly dir: string;
  /** For a node behind NAT: the router's address on the bridge, which peers reach it at. */
  readonly publicIp?: string;
}

function cidrsOf(ns: string, n: number): Pick<LabNode, 'cidr' | 'cidrIp' | 'cidrs' | 'cidr2' | 'podNs' | 'podIp'> {
  const cidr = `10.${60 + n}.0.0/16`;
  const cidr2 = `10.${160 + n}.0.0/16`;
  return { cidr, cidrIp: `10.${60 + n}.0.1`, cidrs: [cidr, cidr2], cidr2, podNs: `${ns}-pod`, podIp: `10.${160 + n}.0.10` };
}

export class IpsecLab {
  readonly tag: string;
  readonly root: string;
  readonly bridgeNs: string;
  readonly nodes: LabNode[] = [];
  readonly #extraNs: string[] = [];
  readonly #runner: CommandRunner;

  private constructor(runner: CommandRunner) {
    this.#runner = runner;
    this.tag = `ist-ipsec-${randomBytes(3).toString('hex')}`;
    this.bridgeNs = `${this.tag}-br`;
    // short: the charon socket path must fit a Unix socket name
    this.root = mkdtempSync(join(tmpdir(), 'istip-'));
  }

  static async create(ids: readonly string[], runner: CommandRunner = new SystemRunner()): Promise<IpsecLab> {
    const lab = new IpsecLab(runner);
    try {
      await lab.#sh('ip', ['netns', 'add', lab.bridgeNs]);
      await lab.#sh('ip', ['-n', lab.bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
      await lab.#sh('ip', ['-n', lab.bridgeNs, 'link', 'set', 'br0', 'up']);
      let n = 1;
      for (const id of ids) await lab.addNode(id, n++);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  #sh(cmd: string, args: readonly string[]): Promise<unknown> {
    return this.#runner.run(cmd, args);
  }

  async addNode(id: string, n: number): Promise<LabNode> {
    const ns = `${this.tag}-${id}`;
    const node: LabNode = { id, ns, underlayIp: `192.168.77.${10 + n}`, ...cidrsOf(ns, n), dir: join(this.root, id) };
    await this.#sh('ip', ['netns', 'add', ns]);
    this.nodes.push(node);
    const peer = `v${n}-${this.tag.slice(-6)}`;
    await this.#sh('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', this.bridgeNs]);
    await this.#sh('ip', ['-n', this.bridgeNs, 'link', 'set', peer, 'master', 'br0', 'up']);
    await this.#sh('ip', ['-n', ns, 'addr', 'add', `${node.underlayIp}/24`, 'dev', 'eth0']);
    await this.#sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await this.#sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await this.#sh('ip', ['-n', ns, 'addr', 'add', `${node.cidrIp}/32`, 'dev', 'lo']);
    await this.#addPod(node);
    return node;
  }

  /** The pod namespace of a node, behind its gateway on a veth; the gateway forwards for it. */
  async #addPod(node: LabNode): Promise<void> {
    await this.#sh('ip', ['netns', 'add', node.podNs]);
    this.#extraNs.push(node.podNs);
    await this.#sh('ip', ['-n', node.ns, 'link', 'add', 'pod0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.podNs]);
    await this.#sh('ip', ['-n', node.ns, 'addr', 'add', '169.254.1.1/32', 'dev', 'pod0']);
    await this.#sh('ip', ['-n', node.ns, 'link', 'set', 'pod0', 'up']);
    await this.#sh('ip', ['-n', node.ns, 'route', 'add', `${node.podIp}/32`, 'dev', 'pod0']);
    await this.#sh('ip', ['netns', 'exec', node.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await this.#sh('ip', ['-n', node.podNs, 'link', 'set', 'lo', 'up']);
    await this.#sh('ip', ['-n', node.podNs, 'addr', 'add', `${node.podIp}/32`, 'dev', 'eth0']);
    await this.#sh('ip', ['-n', node.podNs, 'link', 'set', 'eth0', 'up']);
    await this.#sh('ip', ['-n', node.podNs, 'route', 'add', '169.254.1.1/32', 'dev', 'eth0', 'scope', 'link']);
    await this.#sh('ip', ['-n', node.podNs, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
  }

  /**
   * A gateway behind a masquerading router: the router namespace `<tag>-nat<n>` sits on the
   * bridge at 192.168.77.(10+n) and NATs 172.28.n.0/24, where the gateway has 172.28.n.10.
   * Nothing from outside gets in unless the gateway sent first.
   */
  async addNattedNode(id: string, n: number): Promise<LabNode> {
    const router = `${this.tag}-nat${n}`;
    const ns = `${this.tag}-${id}`;
    const wan = `192.168.77.${10 + n}`;
    const node: LabNode = { id, ns, underlayIp: `172.28.${n}.10`, ...cidrsOf(ns, n), dir: join(this.root, id), publicIp: wan };
    await this.#sh('ip', ['netns', 'add', router]);
    this.#extraNs.push(router);
    await this.#sh('ip', ['netns', 'add', ns]);
    this.nodes.push(node);
    const peer = `v${n}-${this.tag.slice(-6)}`;
    await this.#sh('ip', ['-n', router, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', this.bridgeNs]);
    await this.#sh('ip', ['-n', this.bridgeNs, 'link', 'set', peer, 'master', 'br0', 'up']);
    await this.#sh('ip', ['-n', router, 'addr', 'add', `${wan}/24`, 'dev', 'eth0']);
    await this.#sh('ip', ['-n', router, 'link', 'set', 'eth0', 'up']);
    await this.#sh('ip', ['-n', router, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await this.#sh('ip', ['-n', router, 'addr', 'add', `172.28.${n}.1/24`, 'dev', 'lan0']);
    await this.#sh('ip', ['-n', router, 'link', 'set', 'lan0', 'up']);
    await this.#sh('ip', ['netns', 'exec', router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await this.#sh('ip', ['netns', 'exec', router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', `172.28.${n}.0/24`, '-o', 'eth0', '-j', 'MASQUERADE']);
    await this.#sh('ip', ['-n', ns, 'addr', 'add', `${node.underlayIp}/24`, 'dev', 'eth0']);
    await this.#sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await this.#sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await this.#sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', `172.28.${n}.1`]);
    await this.#sh('ip', ['-n', ns, 'addr', 'add', `${node.cidrIp}/32`, 'dev', 'lo']);
    await this.#addPod(node);
    return node;
  }

  node(id: string): LabNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new Error(`no lab node ${id}`);
    return n;
  }

  /** Removes every namespace and the temp folder (idempotent). */
  async destroy(): Promise<void> {
    for (const ns of [...this.nodes.map((n) => n.ns), ...this.#extraNs, this.bridgeNs]) {
      await this.#runner.run('ip', ['netns', 'pids', ns], { allowFailure: true }).then(async (r) => {
        for (const pid of r.stdout.split('\n').map((s) => Number(s)).filter((p) => p > 0)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      });
      await this.#runner.run('ip', ['netns', 'del', ns], { allowFailure: true });
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
