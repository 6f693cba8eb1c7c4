import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import { POLICY_TABLE, type Ruleset } from './compile.ts';
import { DIGEST_SET, nftDeltaScript, planDelta } from './delta.ts';
import { TrustedDigest, type AuditElement, type PolicyTable, type SetOutcome, type TableOptions } from './table.ts';

/**
 * The node's policy table in the kernel (nftables). Owns only `table ip isthmus-policy`
 * and never touches another table (the route agent's `ip isthmus`, kube-proxy's, the CNI's).
 *
 * Invariants: `set(ruleset)` is idempotent — when the table's set `digest` already names the
 * ruleset's digest it runs no modifying command (the digest this process applied is
 * trusted for `verifyMs` without reading the kernel, then read again); a change is one
 * atomic `nft -f` transaction, so a packet sees either the old rules or the new ones, never
 * a mix: element adds and deletes when the kernel holds the ruleset this object last applied
 * and only set elements differ (delta.ts), else the old table replaced whole (also when the
 * in-place transaction fails, e.g. someone deleted an element). `cleanup()` removes the
 * table and nothing else.
 */
export class NftPolicyTable implements PolicyTable {
  readonly name = 'nftables';
  readonly #runner: CommandRunner;
  readonly #table: string;
  readonly #known: TrustedDigest;
  /** The ruleset this object last applied: the base of an in-place update. */
  #applied: Ruleset | undefined;

  /** `verifyMs`: how long a digest this process applied is trusted before the kernel is read again (repairs a table someone changed). */
  constructor(runner: CommandRunner, table = POLICY_TABLE, options: TableOptions = {}) {
    this.#runner = runner;
    this.#table = table;
    this.#known = new TrustedDigest(options.verifyMs ?? 60_000, options.now ?? Date.now);
  }

  async preflight(): Promise<void> {
    const r = await this.#runner.run('nft', ['list', 'tables'], { allowFailure: true });
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.NOT_ROOT, `nft cannot read the ruleset (${r.stderr.trim()}): the policy enforcer needs CAP_NET_ADMIN and a kernel with nf_tables`);
  }

  /** The digest the kernel's table was made from, or undefined when there is no table (reads only the small set `digest`). */
  async current(): Promise<string | undefined> {
    const r = await this.#runner.run('nft', ['list', 'set', 'ip', this.#table, DIGEST_SET], { allowFailure: true });
    const digest = r.code !== 0 ? undefined : /comment "isthmus policy ([0-9a-f]+)"/.exec(r.stdout)?.[1];
    this.#known.remember(digest);
    return digest;
  }

  async set(ruleset: Ruleset): Promise<SetOutcome> {
    const known = this.#known.get() ?? await this.current();
    if (known === ruleset.digest) {
      // the digest hashes every rule and element: the kernel holds exactly this ruleset (a restarted agent adopts it)
      this.#applied = ruleset;
      return 'unchanged';
    }
    const applied = this.#applied;
    this.#known.remember(undefined);
    this.#applied = undefined;
    const delta = applied !== undefined && known === applied.digest ? planDelta(applied.plan, ruleset.plan) : undefined;
    let outcome: SetOutcome = 'replaced';
    if (delta !== undefined) {
      const r = await this.#runner.run('nft', ['-f', '-'], { input: nftDeltaScript(this.#table, delta, ruleset.digest), allowFailure: true });
      if (r.code === 0) outcome = 'updated';
    }
    if (outcome === 'replaced') {
      const text = this.#table === POLICY_TABLE ? ruleset.text : ruleset.text.replace(`table ip ${POLICY_TABLE} {`, `table ip ${this.#table} {`);
      await this.#runner.run('nft', ['-f', '-'], { input: `table ip ${this.#table}\ndelete table ip ${this.#table}\n${text}` });
    }
    this.#known.remember(ruleset.digest);
    this.#applied = ruleset;
    return outcome;
  }

  /** The flows now in the audit sets (each set read once). */
  async readAudit(sets: Iterable<string>): Promise<AuditElement[]> {
    const out: AuditElement[] = [];
    for (const set of sets) {
      const r = await this.#runner.run('nft', ['-j', 'list', 'set', 'ip', this.#table, set], { allowFailure: true });
      if (r.code !== 0) continue; // replaced meanwhile: read again next time
      out.push(...parseAuditSet(set, r.stdout));
    }
    return out;
  }

  async cleanup(): Promise<void> {
    this.#known.remember(undefined);
    this.#applied = undefined;
    await this.#runner.run('nft', ['delete', 'table', 'ip', this.#table], { allowFailure: true });
  }
}

/** The elements of one audit set from `nft -j list set` (pure; unknown shapes are skipped). */
export function parseAuditSet(set: string, json: string): AuditElement[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return [];
  }
  const items = (doc as { nftables?: unknown[] }).nftables ?? [];
  const out: AuditElement[] = [];
  for (const item of items) {
    const elems = (item as { set?: { elem?: unknown[] } }).set?.elem ?? [];
    for (const e of elems) {
      const concat = (e as { concat?: unknown[] }).concat ?? (e as { elem?: { val?: { concat?: unknown[] } } }).elem?.val?.concat;
      if (!Array.isArray(concat) || concat.length !== 4) continue;
      const [saddr, daddr, protocol, port] = concat as unknown[];
      if (typeof saddr !== 'string' || typeof daddr !== 'string' || typeof protocol !== 'string' || typeof port !== 'number') continue;
      out.push({ set, saddr, daddr, protocol, port });
    }
  }
  return out;
}
