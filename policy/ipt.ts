import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import type { Plan, Ruleset } from './compile.ts';
import { ipsetDeltaScript, planDelta, type SetDelta } from './delta.ts';
import { TrustedDigest, type AuditElement, type PolicyTable, type SetOutcome, type TableOptions } from './table.ts';

/**
 * The policy rules with iptables + ipset, for nodes without nftables: the plan of
 * compile.ts as one filter chain ISTHMUS-POLICY and ipsets named `isthmus-p-<set>`. It owns
 * only that chain, its jump and those sets.
 *
 * Only packets that do not belong to an admitted flow enter the chain: FORWARD's first rule
 * jumps to it for conntrack states other than ESTABLISHED and RELATED, so the packets of a
 * running flow (and its replies) cost one conntrack match, not a walk of the chain with its
 * ipset lookups. Like the nftables table, the chain only narrows: an Allow RETURNs to FORWARD
 * (the node's other rules still decide), a Deny DROPs; it never ACCEPTs what they refuse.
 *
 * set(): the sets are filled as `<name>-n` and swapped in (`ipset restore`, one call), then
 * the chain is replaced in one `iptables-restore --noflush`, then the sets no rule refers to
 * any longer are destroyed: a packet meets the old rules with the old sets or the new
 * rules with the new sets. The chain's first rule carries the ruleset's digest in a
 * comment; the same digest again changes nothing (the digest this object applied is trusted
 * for `verifyMs` without reading `iptables-save`). When the chain carries the digest of the
 * ruleset this object last applied and only set elements differ (delta.ts), the elements
 * are added and deleted in place (one `ipset restore`) and the digest rule replaced; if that
 * fails, everything is replaced as above. Audit sets are hash:ip,port,ip with the
 * plan's timeout, filled by `-j SET` before each verdict rule.
 */
export const IPT_CHAIN = 'ISTHMUS-POLICY';
export const IPSET_PREFIX = 'isthmus-p-';

const ipset = (name: string): string => `${IPSET_PREFIX}${name}`;
/** FORWARD's jump to the chain (as iptables-save prints it), and the one of earlier versions (every packet; removed when seen). */
const JUMP = ['-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED', '-j', IPT_CHAIN];
const OLD_JUMP = ['-j', IPT_CHAIN];
/** The chain's first rule: the digest of the ruleset it holds. */
const digestRule = (digest: string): string => `-A ${IPT_CHAIN} -m comment --comment "isthmus policy ${digest}"`;

/** The `ipset restore` script that makes every set of the plan hold exactly its elements (pure). */
export function ipsetScript(plan: Plan): string {
  const out: string[] = [];
  const fill = (name: string, type: string, items: readonly string[]): void => {
    const real = ipset(name);
    const next = `${real}-n`;
    out.push(`create ${real} ${type} -exist`, `create ${next} ${type} -exist`, `flush ${next}`);
    for (const i of items) out.push(`add ${next} ${i}`);
    out.push(`swap ${next} ${real}`, `destroy ${next}`);
  };
  fill('remote', 'hash:net family inet maxelem 65536', plan.remoteCidrs);
  for (const s of plan.sets) fill(s.name, 'hash:ip family inet maxelem 1048576', s.ips);
  for (const a of plan.audits) out.push(`create ${ipset(a)} hash:ip,port,ip family inet timeout ${plan.auditSeconds} maxelem 65536 -exist`, `flush ${ipset(a)}`);
  return `${out.join('\n')}\n`;
}

/** multiport takes at most 15 ports (a range counts 2): the ports in lists that fit. */
function portChunks(ports: readonly string[]): string[][] {
  const chunks: string[][] = [];
  let cur: string[] = [];
  let n = 0;
  for (const p of ports) {
    const w = p.includes('-') ? 2 : 1;
    if (n + w > 15) {
      chunks.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(p.replace('-', ':'));
    n += w;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/** The chain's rules for iptables-restore (pure). */
export function iptablesChain(ruleset: Ruleset): string[] {
  const plan = ruleset.plan;
  const lines = [
    digestRule(ruleset.digest),
    `-A ${IPT_CHAIN} -m set ! --match-set ${ipset('remote')} src -j RETURN`,
  ];
  for (const r of plan.rules) {
    const base = `-A ${IPT_CHAIN} -m set --match-set ${ipset(r.dst)} dst${r.src === '' || r.src === 'remote' ? '' : ` -m set --match-set ${ipset(r.src)} src`}`;
    const matches = r.protocol === undefined ? [base]
      : r.ports.length === 0 ? [`${base} -p ${r.protocol}`]
      : portChunks(r.ports).map((c) => `${base} -p ${r.protocol} -m multiport --dports ${c.join(',')}`);
    for (const m of matches) {
      lines.push(`${m} -j SET --add-set ${ipset(r.audit)} src,dst,dst`);
      lines.push(`${m} -m comment --comment "${r.comment}" -j ${r.action === 'Allow' ? 'RETURN' : 'DROP'}`);
    }
  }
  return lines;
}

/** `ipset list -o save` of an audit set → its flows (pure; other lines are skipped). */
export function parseIpsetAudit(set: string, text: string): AuditElement[] {
  const out: AuditElement[] = [];
  for (const line of text.split('\n')) {
    const m = /^add \S+ (\d+\.\d+\.\d+\.\d+),([a-z0-9]+):([^,]+),(\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (m === null) continue;
    const port = /^\d+$/.test(m[3] ?? '') ? Number(m[3]) : 0;
    out.push({ set, saddr: m[1] as string, protocol: m[2] as string, port, daddr: m[4] as string });
  }
  return out;
}

export class IptablesPolicyTable implements PolicyTable {
  readonly name = 'iptables';
  readonly #runner: CommandRunner;
  readonly #known: TrustedDigest;
  /** The ruleset this object last applied: the base of an in-place update. */
  #applied: Ruleset | undefined;

  /** `verifyMs`: how long a digest this object applied is trusted before `iptables-save` is read again. */
  constructor(runner: CommandRunner, options: TableOptions = {}) {
    this.#runner = runner;
    this.#known = new TrustedDigest(options.verifyMs ?? 60_000, options.now ?? Date.now);
  }

  async preflight(): Promise<void> {
    const r = await this.#runner.run('iptables-save', ['-t', 'filter'], { allowFailure: true });
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.NOT_ROOT, `iptables-save cannot read the filter table (${r.stderr.trim()}): the policy agent needs CAP_NET_ADMIN`);
    const s = await this.#runner.run('ipset', ['list', '-n'], { allowFailure: true }).catch(() => ({ code: 127, stderr: 'not installed' }));
    if (s.code !== 0) throw new IsthmusError(ErrorCodes.MISSING_DEPENDENCY, `ipset does not work here (${s.stderr.trim()}): install the Debian package ipset`);
  }

  /** The digest on the chain's first rule and whether FORWARD jumps to the chain (one `iptables-save`). */
  async #read(): Promise<{ digest: string | undefined; jump: boolean }> {
    const lines = (await this.#runner.run('iptables-save', ['-t', 'filter'])).stdout.split('\n');
    const re = new RegExp(`^-A ${IPT_CHAIN} -m comment --comment "isthmus policy ([0-9a-f]+)"$`);
    const digest = lines.map((l) => re.exec(l)?.[1]).find((d) => d !== undefined);
    // an earlier version's jump makes the state "no jump": the replace removes it
    return { digest, jump: lines.includes(`-A FORWARD ${JUMP.join(' ')}`) && !lines.includes(`-A FORWARD ${OLD_JUMP.join(' ')}`) };
  }

  async current(): Promise<string | undefined> {
    return (await this.#read()).digest;
  }

  async set(ruleset: Ruleset): Promise<SetOutcome> {
    const trusted = this.#known.get();
    const { digest, jump } = trusted !== undefined ? { digest: trusted, jump: true } : await this.#read();
    if (digest === ruleset.digest && jump) {
      // the digest hashes every rule and element: the kernel holds exactly this ruleset
      this.#known.remember(digest);
      this.#applied = ruleset;
      return 'unchanged';
    }
    const applied = this.#applied;
    this.#applied = undefined;
    this.#known.remember(undefined);
    const delta = applied !== undefined && jump && digest === applied.digest ? planDelta(applied.plan, ruleset.plan) : undefined;
    let outcome: SetOutcome = 'replaced';
    if (delta !== undefined && await this.#update(delta, ruleset.digest)) outcome = 'updated';
    else await this.#replace(ruleset, jump);
    this.#known.remember(ruleset.digest);
    this.#applied = ruleset;
    return outcome;
  }

  /** Every set filled aside and swapped in, the chain replaced, sets no rule uses destroyed. */
  async #replace(ruleset: Ruleset, jump: boolean): Promise<void> {
    await this.#runner.run('ipset', ['restore'], { input: ipsetScript(ruleset.plan) });
    const input = ['*filter', `:${IPT_CHAIN} - [0:0]`, ...iptablesChain(ruleset), 'COMMIT', ''].join('\n');
    await this.#runner.run('iptables-restore', ['-w', '--noflush'], { input });
    if (!jump) {
      await this.#deleteJumps();
      await this.#runner.run('iptables', ['-w', '-t', 'filter', '-I', 'FORWARD', '1', ...JUMP]);
    }
    const keep = new Set(['remote', ...ruleset.plan.sets.map((s) => s.name), ...ruleset.plan.audits].map(ipset));
    for (const name of await this.#sets()) {
      if (!keep.has(name)) await this.#runner.run('ipset', ['destroy', name], { allowFailure: true });
    }
  }

  /** The delta's elements added and deleted (one `ipset restore`), then the digest rule replaced; false when either failed. */
  async #update(delta: readonly SetDelta[], digest: string): Promise<boolean> {
    const script = ipsetDeltaScript(IPSET_PREFIX, delta);
    if (script !== '' && (await this.#runner.run('ipset', ['restore'], { input: script, allowFailure: true })).code !== 0) return false;
    const r = await this.#runner.run('iptables', ['-w', '-t', 'filter', '-R', IPT_CHAIN, '1', '-m', 'comment', '--comment', `isthmus policy ${digest}`], { allowFailure: true });
    return r.code === 0;
  }

  async #sets(): Promise<string[]> {
    const r = await this.#runner.run('ipset', ['list', '-n'], { allowFailure: true });
    return r.code !== 0 ? [] : r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith(IPSET_PREFIX));
  }

  async readAudit(sets: Iterable<string>): Promise<AuditElement[]> {
    const out: AuditElement[] = [];
    for (const set of sets) {
      const r = await this.#runner.run('ipset', ['list', '-o', 'save', ipset(set)], { allowFailure: true });
      if (r.code === 0) out.push(...parseIpsetAudit(set, r.stdout));
    }
    return out;
  }

  /** Every jump to the chain from FORWARD, of this version and earlier ones. */
  async #deleteJumps(): Promise<void> {
    for (const jump of [JUMP, OLD_JUMP]) {
      for (let i = 0; i < 4; i++) {
        const r = await this.#runner.run('iptables', ['-w', '-t', 'filter', '-D', 'FORWARD', ...jump], { allowFailure: true });
        if (r.code !== 0) break;
      }
    }
  }

  async cleanup(): Promise<void> {
    this.#applied = undefined;
    this.#known.remember(undefined);
    await this.#deleteJumps();
    await this.#runner.run('iptables', ['-w', '-t', 'filter', '-F', IPT_CHAIN], { allowFailure: true });
    await this.#runner.run('iptables', ['-w', '-t', 'filter', '-X', IPT_CHAIN], { allowFailure: true });
    for (const name of await this.#sets()) await this.#runner.run('ipset', ['destroy', name], { allowFailure: true });
  }
}

/**
 * The backend for `--filter auto|nftables|iptables`: auto takes nftables when `nft` works,
 * else iptables + ipset; neither → MISSING_DEPENDENCY naming the packages.
 */
export async function choosePolicyTable(want: 'auto' | 'nftables' | 'iptables', nft: PolicyTable, ipt: PolicyTable): Promise<PolicyTable> {
  const candidates = want === 'nftables' ? [nft] : want === 'iptables' ? [ipt] : [nft, ipt];
  const errors: string[] = [];
  for (const t of candidates) {
    try {
      await t.preflight();
      return t;
    } catch (err) {
      if (candidates.length === 1) throw err;
      errors.push(err instanceof Error ? err.message : String(err));
    }
  }
  throw new IsthmusError(ErrorCodes.MISSING_DEPENDENCY, `neither nftables nor iptables + ipset works here (${errors.join('; ')}): install the Debian package nftables (or iptables and ipset) and run the policy agent with CAP_NET_ADMIN`);
}
