import { createHash } from 'node:crypto';
import { ErrorCodes, IsthmusError, parseCidr, parseIp, type CommandRunner } from '../../core/index.ts';

/**
 * The VXLAN cables' origin check: VXLAN carries no proof of origin, so without it a member
 * cluster (or anyone on the underlay) could send inner packets with another cluster's pod
 * addresses as their source, and the policy agents would take them for that cluster's pods.
 * An nftables table `inet isthmus-vxlan` on the gateway node looks into every VXLAN packet
 * of this gateway's VNI that arrives for a local address on its UDP port, before conntrack
 * and before the kernel decapsulates it, and lets it in only when
 *   - its outer source is the underlay address of a remote gateway this gateway has a cable
 *     to (the one its FDB entry sends to: the NAT's public address behind a NAT), and
 *   - its inner frame is IPv4 or IPv6 whose source lies in that remote's CIDRs — the ones
 *     the broker published for it — or is its tunnel address (the health probes).
 * Everything else of that VNI and port is dropped and counted: so a cluster can speak only
 * for its own addresses, as WireGuard's allowed IPs and IPsec's traffic selectors make the
 * other drivers do (with VXLAN, the underlay must still keep outsiders from forging a
 * member's outer address: there is no cryptography).
 *
 * Offsets, from the UDP header (nftables `@th`): the VXLAN header is bytes 8–15 (its VNI bits
 * 96–119); the inner Ethernet header bytes 16–29 (the EtherType bits 224–239); an inner
 * IPv4 source bits 336–367, an inner IPv6 source bits 304–431. A CIDR of prefix length p is
 * matched as the first p bits of the source.
 *
 * `originRuleset` is pure and deterministic; the table carries a digest of its text in a
 * comment, so `set` of the same rules runs no modifying command.
 */
export const ORIGIN_TABLE = 'isthmus-vxlan';

export interface OriginPeer {
  readonly remoteCluster: string;
  readonly remoteIp: string;
  readonly tunnelIp: string;
  readonly routes: readonly string[];
}

const INNER = {
  4: { etherType: '0x0800', offset: 336 },
  6: { etherType: '0x86dd', offset: 304 },
} as const;

/** `@th,<offset>,<p> <value>`: the first p bits of the inner source equal the CIDR's network (pure). */
function innerSourceMatch(cidr: string): string {
  const c = parseCidr(cidr);
  const bits = c.family === 4 ? 32 : 128;
  if (c.prefix === 0) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${cidr}: a remote CIDR of prefix length 0 would let any source in`);
  const value = c.base >> BigInt(bits - c.prefix);
  return `@th,224,16 ${INNER[c.family].etherType} @th,${INNER[c.family].offset},${c.prefix} 0x${value.toString(16)}`;
}

/** The table's text for these peers (pure): sorted, so the same peers give the same text. */
export function originRuleset(o: { readonly port: number; readonly vni: number; readonly peers: readonly OriginPeer[] }): string {
  const lines: string[] = [];
  for (const p of [...o.peers].sort((a, b) => (a.remoteCluster < b.remoteCluster ? -1 : 1))) {
    const outer = parseIp(p.remoteIp).family === 4 ? `ip saddr ${p.remoteIp}` : `ip6 saddr ${p.remoteIp}`;
    const sources = [...new Set([`${p.tunnelIp}/${parseIp(p.tunnelIp).family === 4 ? 32 : 128}`, ...p.routes])].sort();
    for (const s of sources) lines.push(`    ${outer} ${innerSourceMatch(s)} accept comment "${p.remoteCluster}"`);
  }
  const body = [
    `  chain prerouting { type filter hook prerouting priority raw; policy accept;`,
    `    fib daddr type local udp dport ${o.port} @th,96,24 ${o.vni} jump from-cable`,
    '  }',
    '  chain from-cable {',
    ...lines,
    '    counter drop',
    '  }',
  ].join('\n');
  const digest = createHash('sha256').update(body).digest('hex').slice(0, 16);
  return `table inet ${ORIGIN_TABLE} {\n  comment "isthmus vxlan-origin ${digest}"\n${body}\n}\n`;
}

/** The table on the node: replaced in one transaction when its digest differs; removed by cleanup. */
export class VxlanOrigin {
  readonly #runner: CommandRunner;

  constructor(runner: CommandRunner) {
    this.#runner = runner;
  }

  async preflight(): Promise<void> {
    const r = await this.#runner.run('nft', ['list', 'tables'], { allowFailure: true });
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.MISSING_DEPENDENCY, `nft cannot read the ruleset (${r.stderr.trim()}): VXLAN cables need nftables (CAP_NET_ADMIN and a kernel with nf_tables) for their origin check`);
  }

  /** Returns whether it changed the kernel. */
  async set(text: string): Promise<boolean> {
    const want = /isthmus vxlan-origin ([0-9a-f]+)/.exec(text)?.[1];
    const cur = await this.#runner.run('nft', ['list', 'table', 'inet', ORIGIN_TABLE], { allowFailure: true });
    if (cur.code === 0 && /isthmus vxlan-origin ([0-9a-f]+)/.exec(cur.stdout)?.[1] === want) return false;
    await this.#runner.run('nft', ['-f', '-'], { input: `table inet ${ORIGIN_TABLE}\ndelete table inet ${ORIGIN_TABLE}\n${text}` });
    return true;
  }

  /** Packets dropped so far (0 without the table). */
  async dropped(): Promise<number> {
    const r = await this.#runner.run('nft', ['list', 'chain', 'inet', ORIGIN_TABLE, 'from-cable'], { allowFailure: true });
    return r.code === 0 ? Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? 0) : 0;
  }

  async cleanup(): Promise<void> {
    await this.#runner.run('nft', ['delete', 'table', 'inet', ORIGIN_TABLE], { allowFailure: true });
  }
}
