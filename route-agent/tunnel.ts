import type { CommandRunner } from '../core/index.ts';
import { TUNNEL_DEV, VXLAN_OVERHEAD, tunnelIp, tunnelMac, type TunnelSpec } from './desired.ts';

/**
 * The intra-cluster VXLAN of `vxlan` mode: a device `isthmus-ra` on every node that
 * needs it, with a static FDB and neighbour entry per peer (no learning, no multicast),
 * addressed 240.b.c.d/8 and MAC 02:1a:a:b:c:d from its node address a.b.c.d, so every
 * node derives every peer's tunnel addresses without asking. The device loosens
 * rp_filter on itself only (return traffic reaches the gateway through the tunnel while
 * its route back is the main table's: an asymmetric path).
 *
 * Invariants: `set(spec)` is idempotent (reads the device, FDB and neighbours, changes
 * only the difference, in one `ip -batch` and one `bridge -batch`); `set(undefined)` and
 * `cleanup()` delete the device (and with it its FDB and neighbours).
 */
export const TUNNEL_VNI = 4799;
export const TUNNEL_PORT = 4799;

interface Link { mtu?: number; address?: string; linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number } } }

export class Tunnel {
  readonly #runner: CommandRunner;
  readonly #underlayMtu: number;

  constructor(runner: CommandRunner, underlayMtu = 1500) {
    this.#runner = runner;
    this.#underlayMtu = underlayMtu;
  }

  async #link(): Promise<Link | undefined> {
    const r = await this.#runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', TUNNEL_DEV], { allowFailure: true });
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as Link[])[0];
  }

  /** Returns the number of modifying commands run. */
  async set(spec: TunnelSpec | undefined): Promise<number> {
    const link = await this.#link();
    if (spec === undefined) {
      if (link === undefined) return 0;
      await this.cleanup();
      return 1;
    }
    const mtu = this.#underlayMtu - VXLAN_OVERHEAD;
    const d = link?.linkinfo?.info_data;
    const ipLines: string[] = [];
    let fresh = false;
    if (link === undefined || link.linkinfo?.info_kind !== 'vxlan' || d?.id !== TUNNEL_VNI || d.local !== spec.localIp || d.port !== TUNNEL_PORT) {
      if (link !== undefined) ipLines.push(`link del ${TUNNEL_DEV}`);
      ipLines.push(`link add ${TUNNEL_DEV} address ${tunnelMac(spec.localIp)} mtu ${mtu} type vxlan id ${TUNNEL_VNI} local ${spec.localIp} dstport ${TUNNEL_PORT} nolearning`);
      ipLines.push(`addr add ${tunnelIp(spec.localIp)}/8 dev ${TUNNEL_DEV}`);
      ipLines.push(`link set ${TUNNEL_DEV} up`);
      fresh = true;
    } else {
      if (link.mtu !== mtu) ipLines.push(`link set ${TUNNEL_DEV} mtu ${mtu}`);
    }
    const fdbHave = fresh ? [] : await this.#fdb();
    const neighHave = fresh ? [] : await this.#neighbours();
    for (const p of spec.peers) {
      if (!neighHave.includes(`${tunnelIp(p)} ${tunnelMac(p)}`)) ipLines.push(`neigh replace ${tunnelIp(p)} lladdr ${tunnelMac(p)} dev ${TUNNEL_DEV} nud permanent`);
    }
    const wantNeigh = new Set(spec.peers.map((p) => tunnelIp(p)));
    for (const n of neighHave) {
      const ip = n.split(' ')[0] ?? '';
      if (!wantNeigh.has(ip)) ipLines.push(`neigh del ${ip} dev ${TUNNEL_DEV}`);
    }
    const bridgeLines: string[] = [];
    for (const p of spec.peers) if (!fdbHave.includes(`${tunnelMac(p)} ${p}`)) bridgeLines.push(`fdb replace ${tunnelMac(p)} dev ${TUNNEL_DEV} dst ${p} self permanent`);
    const wantFdb = new Set(spec.peers.map((p) => `${tunnelMac(p)} ${p}`));
    for (const f of fdbHave) if (!wantFdb.has(f)) bridgeLines.push(`fdb del ${f.split(' ')[0] ?? ''} dev ${TUNNEL_DEV} dst ${f.split(' ')[1] ?? ''} self`);
    let n = 0;
    if (ipLines.length > 0) {
      await this.#runner.run('ip', ['-batch', '-'], { input: `${ipLines.join('\n')}\n` });
      n += ipLines.length;
    }
    if (bridgeLines.length > 0) {
      await this.#runner.run('bridge', ['-batch', '-'], { input: `${bridgeLines.join('\n')}\n` });
      n += bridgeLines.length;
    }
    if (fresh) await this.#runner.run('sysctl', ['-q', '-w', `net.ipv4.conf.${TUNNEL_DEV}.rp_filter=2`]);
    return n;
  }

  /** FDB entries as "mac dst". */
  async #fdb(): Promise<string[]> {
    const r = await this.#runner.run('bridge', ['-j', 'fdb', 'show', 'dev', TUNNEL_DEV], { allowFailure: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    return (JSON.parse(r.stdout) as { mac?: string; dst?: string }[]).filter((e) => e.dst !== undefined).map((e) => `${e.mac ?? ''} ${e.dst ?? ''}`);
  }

  /** Permanent neighbours as "ip mac". */
  async #neighbours(): Promise<string[]> {
    const r = await this.#runner.run('ip', ['-j', 'neigh', 'show', 'dev', TUNNEL_DEV, 'nud', 'permanent'], { allowFailure: true });
    if (r.code !== 0 || r.stdout.trim() === '') return [];
    return (JSON.parse(r.stdout) as { dst?: string; lladdr?: string }[]).map((e) => `${e.dst ?? ''} ${e.lladdr ?? ''}`);
  }

  async cleanup(): Promise<void> {
    await this.#runner.run('ip', ['link', 'del', TUNNEL_DEV], { allowFailure: true });
  }
}
