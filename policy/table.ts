import type { Ruleset } from './compile.ts';

/**
 * The node's policy rules in the kernel, behind one small interface with two
 * implementations: nftables (NftPolicyTable, preferred) and iptables + ipset
 * (IptablesPolicyTable, where nftables is absent). Each owns only its own table, or its
 * own chain and sets, and never touches another owner's rules.
 *
 * Invariants: `set(ruleset)` is idempotent — when the kernel already holds the ruleset's
 * digest it changes nothing; when the kernel holds the ruleset this object last applied and
 * the new one differs only in set elements (delta.ts), those elements are added and deleted
 * in place ('updated'); otherwise (another shape, a kernel that drifted, an in-place update
 * that failed, a restarted process) everything is replaced ('replaced'), so that a packet
 * meets either the old rules or the new ones. `readAudit` returns the flows now in the audit
 * sets. `cleanup()` removes exactly what `set` made.
 */
export interface AuditElement {
  /** The audit set it was read from (see Ruleset.audit). */
  readonly set: string;
  readonly saddr: string;
  readonly daddr: string;
  readonly protocol: string;
  readonly port: number;
}

export type SetOutcome = 'unchanged' | 'updated' | 'replaced';

export interface PolicyTable {
  readonly name: 'nftables' | 'iptables';
  /** Fails with NOT_ROOT or MISSING_DEPENDENCY when this backend cannot work here; changes nothing. */
  preflight(): Promise<void>;
  /** The digest of the ruleset the kernel holds, or undefined when none. */
  current(): Promise<string | undefined>;
  /** What it did to the kernel's rules. */
  set(ruleset: Ruleset): Promise<SetOutcome>;
  readAudit(sets: Iterable<string>): Promise<AuditElement[]>;
  cleanup(): Promise<void>;
}

/**
 * The digest a table object last applied or read, trusted for `verifyMs` (reading the kernel
 * back costs a command per change); after that, or after forget(), the kernel is read again,
 * which repairs a table someone changed or removed.
 */
export class TrustedDigest {
  readonly #verifyMs: number;
  readonly #now: () => number;
  #known: { digest: string; at: number } | undefined;

  constructor(verifyMs: number, now: () => number) {
    this.#verifyMs = verifyMs;
    this.#now = now;
  }

  /** The trusted digest, or undefined when there is none or it is too old. */
  get(): string | undefined {
    return this.#known !== undefined && this.#now() - this.#known.at < this.#verifyMs ? this.#known.digest : undefined;
  }

  remember(digest: string | undefined): void {
    this.#known = digest === undefined ? undefined : { digest, at: this.#now() };
  }
}

/** Options of both backends: how long a digest is trusted without reading the kernel (default 60 s), and the clock. */
export interface TableOptions {
  readonly verifyMs?: number;
  readonly now?: () => number;
}
