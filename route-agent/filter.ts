import { createHash } from 'node:crypto';
import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import type { FilterSpec } from './desired.ts';
import { nftWatch, type Watch } from './monitor.ts';

/**
 * The route agent's packet-filter rules, behind one small interface with two
 * implementations: nftables (preferred where the kernel has it) and iptables. Each owns
 * only its own table or chains and never removes, reorders or edits another owner's
 * rules (kube-proxy's, the CNI's, the user's).
 *
 * What the rules do, for traffic from or to a remote CIDR:
 * - no masquerading: the source pod IP survives end to end, past kube-proxy's
 *   mark-based masquerade (both its iptables and nftables modes) and the CNI's
 *   address-based SNAT rules;
 * - TCP MSS clamped to the route's path MTU on forwarded SYNs (both directions);
 * - a packet from a remote CIDR that comes in on an interface this node would not send
 *   it back through is dropped (a reverse-path check, before conntrack): on the active
 *   gateway node the remote CIDRs are routed into the cables, so a packet sent in clear on
 *   the underlay with a remote pod IP as its source — claiming an identity the policy
 *   agents would trust — goes no further; while a cable is down its CIDRs are unreachable
 *   and the check fails closed. On a node in vxlan mode only the tunnel passes them; in
 *   direct mode the gateway and the underlay share the interface, so there it is no check.
 *
 * Invariants: `set(desired)` is idempotent — when the rules already match it runs no
 * modifying command (it compares a digest of the desired rules with the one recorded
 * in the kernel); a change is one atomic transaction (one `nft -f`, one
 * `iptables-restore --noflush`). `cleanup()` removes exactly what `set` made.
 */
export interface PacketFilter {
  readonly name: 'nftables' | 'iptables';
  /** What reports a change to its rules as it happens (none for iptables: the periodic resync repairs those). */
  readonly watch: Watch | undefined;
  /** Fails with MISSING_DEPENDENCY or NOT_ROOT when this backend cannot work here; changes nothing. */
  preflight(): Promise<void>;
  /** Returns true when it changed something. */
  set(desired: FilterSpec): Promise<boolean>;
  cleanup(): Promise<void>;
}

/** kube-proxy's masquerade bit (its --iptables-masquerade-bit, default 14). */
export const DEFAULT_MASQ_MARK = 0x4000;

const digest = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 16);

/** The nftables ruleset of the route agent, as text for `nft -f` (pure). */
export function nftRuleset(desired: FilterSpec, table = 'isthmus'): string {
  const cidrs = [...desired.remoteCidrs].sort();
  const body = [
    `  set remote { type ipv4_addr; flags interval;${cidrs.length === 0 ? '' : ` elements = { ${cidrs.join(', ')} }`} }`,
    // an identity source NAT in the earliest NAT chain: the connection is NATed (to itself)
    // here, so no later NAT chain (kube-proxy's, the CNI's, iptables' or nftables') masquerades it
    '  chain nat-postrouting { type nat hook postrouting priority srcnat - 10; policy accept;',
    '    ip saddr @remote snat ip to ip saddr',
    '    ip daddr @remote snat ip to ip saddr',
    '  }',
    '  chain raw-prerouting { type filter hook prerouting priority raw; policy accept;',
    '    ip saddr @remote fib saddr . iif oif missing counter drop',
    '  }',
    '  chain mangle-forward { type filter hook forward priority mangle; policy accept;',
    '    ip daddr @remote tcp flags syn / syn,rst tcp option maxseg size set rt mtu',
    '    ip saddr @remote tcp flags syn / syn,rst tcp option maxseg size set rt mtu',
    '  }',
  ].join('\n');
  return `table ip ${table} {\n  comment "isthmus route-agent ${digest(body)}"\n${body}\n}\n`;
}

export class NftFilter implements PacketFilter {
  readonly name = 'nftables';
  readonly watch: Watch;
  readonly #runner: CommandRunner;
  readonly #table: string;

  constructor(runner: CommandRunner, table = 'isthmus') {
    this.#runner = runner;
    this.#table = table;
    this.watch = nftWatch(table);
  }

  async preflight(): Promise<void> {
    const r = await this.#runner.run('nft', ['list', 'tables'], { allowFailure: true });
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.NOT_ROOT, `nft cannot read the ruleset (${r.stderr.trim()}): the route agent needs CAP_NET_ADMIN and a kernel with nf_tables`);
  }

  async #current(): Promise<string | undefined> {
    const r = await this.#runner.run('nft', ['list', 'table', 'ip', this.#table], { allowFailure: true });
    if (r.code !== 0) return undefined;
    return /comment "isthmus route-agent ([0-9a-f]+)"/.exec(r.stdout)?.[1];
  }

  async set(desired: FilterSpec): Promise<boolean> {
    const text = nftRuleset(desired, this.#table);
    const want = /isthmus route-agent ([0-9a-f]+)/.exec(text)?.[1];
    if ((await this.#current()) === want) return false;
    // one transaction: create (so delete cannot fail), delete, create anew
    await this.#runner.run('nft', ['-f', '-'], { input: `table ip ${this.#table}\ndelete table ip ${this.#table}\n${text}` });
    return true;
  }

  async cleanup(): Promise<void> {
    await this.#runner.run('nft', ['delete', 'table', 'ip', this.#table], { allowFailure: true });
  }
}

const NAT_CHAIN = 'ISTHMUS-POSTROUTING';
const MANGLE_FWD = 'ISTHMUS-FORWARD';
const MANGLE_POST = 'ISTHMUS-POSTROUTING';
const MANGLE_PRE = 'ISTHMUS-PREROUTING';

/** Our chains' rules for iptables-restore (pure): table → lines. */
export function iptablesRules(desired: FilterSpec, masqMark = DEFAULT_MASQ_MARK): { nat: string[]; mangle: string[] } {
  const cidrs = [...desired.remoteCidrs].sort();
  return {
    // ACCEPT ends the nat POSTROUTING traversal before the CNI's or kube-proxy's MASQUERADE
    nat: cidrs.flatMap((c) => [`-A ${NAT_CHAIN} -s ${c} -j ACCEPT`, `-A ${NAT_CHAIN} -d ${c} -j ACCEPT`]),
    mangle: [
      // the reverse-path check (xt_rpfilter, strict: the interface must be the one back)
      ...cidrs.map((c) => `-A ${MANGLE_PRE} -s ${c} -m rpfilter --invert -j DROP`),
      ...cidrs.flatMap((c) => [
        `-A ${MANGLE_FWD} -d ${c} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`,
        `-A ${MANGLE_FWD} -s ${c} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`,
      ]),
      // kube-proxy in nftables mode is not stopped by an iptables ACCEPT: clear its masquerade bit too
      ...cidrs.map((c) => `-A ${MANGLE_POST} -s ${c} -j MARK --set-xmark 0x0/0x${masqMark.toString(16)}`),
    ],
  };
}

const JUMPS: readonly { table: 'nat' | 'mangle'; chain: string; target: string }[] = [
  { table: 'nat', chain: 'POSTROUTING', target: NAT_CHAIN },
  { table: 'mangle', chain: 'PREROUTING', target: MANGLE_PRE },
  { table: 'mangle', chain: 'FORWARD', target: MANGLE_FWD },
  { table: 'mangle', chain: 'POSTROUTING', target: MANGLE_POST },
];

export class IptablesFilter implements PacketFilter {
  readonly name = 'iptables';
  readonly watch = undefined;
  readonly #runner: CommandRunner;
  readonly #masqMark: number;

  constructor(runner: CommandRunner, masqMark = DEFAULT_MASQ_MARK) {
    this.#runner = runner;
    this.#masqMark = masqMark;
  }

  async preflight(): Promise<void> {
    const r = await this.#runner.run('iptables-save', ['-t', 'nat'], { allowFailure: true });
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.NOT_ROOT, `iptables-save cannot read the nat table (${r.stderr.trim()}): the route agent needs CAP_NET_ADMIN`);
  }

  async #save(table: 'nat' | 'mangle'): Promise<string[]> {
    const r = await this.#runner.run('iptables-save', ['-t', table]);
    return r.stdout.split('\n');
  }

  async set(desired: FilterSpec): Promise<boolean> {
    const want = iptablesRules(desired, this.#masqMark);
    const saved = { nat: await this.#save('nat'), mangle: await this.#save('mangle') };
    const ours = (lines: string[], chains: string[]): string[] => lines.filter((l) => chains.some((c) => l.startsWith(`-A ${c} `)));
    const missingJumps = JUMPS.filter((j) => !saved[j.table].some((l) => l === `-A ${j.chain} -j ${j.target}`));
    const natSame = ours(saved.nat, [NAT_CHAIN]).join('\n') === want.nat.join('\n') && saved.nat.some((l) => l.startsWith(`:${NAT_CHAIN} `));
    const mangleChains = [MANGLE_PRE, MANGLE_FWD, MANGLE_POST];
    // iptables-save lists chains in the kernel's order, not ours: compare chain by chain
    const mangleSame = mangleChains.every((c) => ours(saved.mangle, [c]).join('\n') === ours(want.mangle, [c]).join('\n') && saved.mangle.some((l) => l.startsWith(`:${c} `)));
    if (natSame && mangleSame && missingJumps.length === 0) return false;
    // a declared chain is flushed by --noflush restore; the jumps go first in their built-in chain
    const jumps = (table: 'nat' | 'mangle'): string[] => missingJumps.filter((j) => j.table === table).map((j) => `-I ${j.chain} 1 -j ${j.target}`);
    const input = [
      '*nat', `:${NAT_CHAIN} - [0:0]`, ...want.nat, ...jumps('nat'), 'COMMIT',
      '*mangle', `:${MANGLE_PRE} - [0:0]`, `:${MANGLE_FWD} - [0:0]`, `:${MANGLE_POST} - [0:0]`, ...want.mangle, ...jumps('mangle'), 'COMMIT', '',
    ].join('\n');
    await this.#runner.run('iptables-restore', ['-w', '--noflush'], { input });
    return true;
  }

  async cleanup(): Promise<void> {
    for (const j of JUMPS) {
      // delete every jump of ours (there is one; a crash between insert and record could leave two)
      for (let i = 0; i < 4; i++) {
        const r = await this.#runner.run('iptables', ['-w', '-t', j.table, '-D', j.chain, '-j', j.target], { allowFailure: true });
        if (r.code !== 0) break;
      }
    }
    for (const [table, chain] of [['nat', NAT_CHAIN], ['mangle', MANGLE_PRE], ['mangle', MANGLE_FWD], ['mangle', MANGLE_POST]] as const) {
      await this.#runner.run('iptables', ['-w', '-t', table, '-F', chain], { allowFailure: true });
      await this.#runner.run('iptables', ['-w', '-t', table, '-X', chain], { allowFailure: true });
    }
  }
}

/**
 * The backend for `--filter auto|nftables|iptables`: auto takes nftables when `nft` is
 * installed and works, else iptables; neither → MISSING_DEPENDENCY naming both packages.
 */
export async function chooseFilter(runner: CommandRunner, want: 'auto' | 'nftables' | 'iptables'): Promise<PacketFilter> {
  const nft = new NftFilter(runner);
  const ipt = new IptablesFilter(runner);
  if (want === 'nftables') {
    await nft.preflight();
    return nft;
  }
  if (want === 'iptables') {
    await ipt.preflight();
    return ipt;
  }
  const errors: string[] = [];
  for (const f of [nft, ipt] as const) {
    try {
      await f.preflight();
      return f;
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  throw new IsthmusError(ErrorCodes.MISSING_DEPENDENCY, `neither nftables nor iptables works here (${errors.join('; ')}): install the Debian package nftables (or iptables) and run the route agent with CAP_NET_ADMIN`);
}
