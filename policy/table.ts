import type { Ruleset } from './compile.ts';

/**
 * The node's policy rules in the kernel, behind one small interface with two
 * implementations: nftables (NftPolicyTable, preferred) and iptables + ipset
 * (IptablesPolicyTable, where nftables is absent). Each owns only its own table, or its
 * own chain and sets, and never touches another owner's rules.
 *
 * Invariants: `set(ruleset)` is idempotent — when the kernel already holds the ruleset's
 * digest it changes nothing; otherwise the change is applied so that a packet meets
 * either the old rules or the new ones. `readAudit` returns the flows now in the audit
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

export interface PolicyTable {
  readonly name: 'nftables' | 'iptables';
  /** Fails with NOT_ROOT or MISSING_DEPENDENCY when this backend cannot work here; changes nothing. */
  preflight(): Promise<void>;
  /** The digest of the ruleset the kernel holds, or undefined when none. */
  current(): Promise<string | undefined>;
  /** Returns true when it changed the kernel's rules. */
  set(ruleset: Ruleset): Promise<boolean>;
  readAudit(sets: Iterable<string>): Promise<AuditElement[]>;
  cleanup(): Promise<void>;
}
