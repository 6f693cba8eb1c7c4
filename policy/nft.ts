import { ErrorCodes, IsthmusError, type CommandRunner } from '../core/index.ts';
import { POLICY_TABLE, type Ruleset } from './compile.ts';
import type { AuditElement, PolicyTable } from './table.ts';

/**
 * The node's policy table in the kernel (nftables). Owns only `table ip isthmus-policy`
 * and never touches another table (the route agent's `ip isthmus`, kube-proxy's, the CNI's).
 *
 * Invariants: `set(ruleset)` is idempotent — when the table's comment already names the
 * ruleset's digest it runs no modifying command (the digest this process applied is
 * trusted for `verifyMs` without reading the kernel, then read again); a change is one atomic `nft -f`
 * transaction (the old table is replaced whole, so a packet sees either the old rules or
 * the new ones, never a mix). `cleanup()` removes the table and nothing else.
 */
export class NftPolicyTable implements PolicyTable {
  readonly name = 'nftables';
  readonly #runner: CommandRunner;
  readonly #table: string;
  readonly #verifyMs: number;
  readonly #now: () => number;
  /** The digest this process last applied or read, and when: listing a table with large sets costs ~0.7 s. */
  #known: { digest: string; at: number } | undefined;

  /** `verifyMs`: how long a digest this process applied is trusted before the kernel is read again (repairs a table someone changed). */
  constructor(runner: CommandRunner, table = POLICY_TABLE, options: { verifyMs?: number; now?: () => number } = {}) {
    this.#runner = runner;
    this.#table = table;
    this.#verifyMs = options.verifyMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  async preflight(): Promise<void> {
    const r = await this.#runner.run('nft', ['list', 'tables'], { allowFailure: true });
    if (r.code !== 0) throw new IsthmusError(ErrorCodes.NOT_ROOT, `nft cannot read the ruleset (${r.stderr.trim()}): the policy enforcer needs CAP_NET_ADMIN and a kernel with nf_tables`);
  }

  /** The digest the kernel's table was made from, or undefined when there is no table. */
  async current(): Promise<string | undefined> {
    const r = await this.#runner.run('nft', ['list', 'table', 'ip', this.#table], { allowFailure: true });
    const digest = r.code !== 0 ? undefined : /comment "isthmus policy ([0-9a-f]+)"/.exec(r.stdout.slice(0, 2_000))?.[1];
    this.#known = digest === undefined ? undefined : { digest, at: this.#now() };
    return digest;
  }

  /** Returns true when it changed the kernel's rules. */
  async set(ruleset: Ruleset): Promise<boolean> {
    const known = this.#known !== undefined && this.#now() - this.#known.at < this.#verifyMs ? this.#known.digest : await this.current();
    if (known === ruleset.digest) return false;
    const text = this.#table === POLICY_TABLE ? ruleset.text : ruleset.text.replace(`table ip ${POLICY_TABLE} {`, `table ip ${this.#table} {`);
    this.#known = undefined;
    await this.#runner.run('nft', ['-f', '-'], { input: `table ip ${this.#table}\ndelete table ip ${this.#table}\n${text}` });
    this.#known = { digest: ruleset.digest, at: this.#now() };
    return true;
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
    this.#known = undefined;
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
