import type { Plan } from './compile.ts';

/**
 * The in-place update of a node's policy rules (pure): when two plans differ only in which
 * addresses their sets hold — a remote pod relabelled, a pod come or gone — the kernel's
 * sets are updated element by element instead of the table (or chain) being replaced whole.
 *
 * Invariants: `planDelta(a, b)` is undefined exactly when the plans' shapes differ (rules,
 * their order, set names, audit sets, remote CIDRs or the audit timeout): then only a full
 * replace is right. Otherwise applying its `add` and `del` to sets holding exactly `a`'s
 * elements leaves them holding exactly `b`'s; sets that do not change are absent, so two
 * equal plans give an empty delta.
 */
export interface SetDelta {
  readonly name: string;
  /** Addresses to add (in `to`'s order). */
  readonly add: readonly string[];
  /** Addresses to delete (in `from`'s order). */
  readonly del: readonly string[];
}

/** Everything of a plan but its sets' elements: equal shapes can be updated in place. */
export function planShape(plan: Plan): string {
  return JSON.stringify({ remote: plan.remoteCidrs, sets: plan.sets.map((s) => s.name), audits: plan.audits, rules: plan.rules, auditSeconds: plan.auditSeconds });
}

/** The element changes from `from` to `to`, or undefined when their shapes differ. */
export function planDelta(from: Plan, to: Plan): SetDelta[] | undefined {
  if (planShape(from) !== planShape(to)) return undefined;
  const out: SetDelta[] = [];
  to.sets.forEach((next, i) => {
    const prev = from.sets[i]?.ips ?? [];
    const had = new Set(prev);
    const has = new Set(next.ips);
    const add = next.ips.filter((ip) => !had.has(ip));
    const del = prev.filter((ip) => !has.has(ip));
    if (add.length > 0 || del.length > 0) out.push({ name: next.name, add, del });
  });
  return out;
}

/** The nftables set holding the ruleset's digest in its one element's comment (a table comment cannot be changed in place). */
export const DIGEST_SET = 'digest';
export const digestElement = (digest: string): string => `0.0.0.0 comment "isthmus policy ${digest}"`;

/**
 * One `nft -f` transaction applying a delta to `table` and recording the new digest: the
 * kernel applies all of it or none (a delete of an element that is not there fails it).
 */
export function nftDeltaScript(table: string, delta: readonly SetDelta[], digest: string): string {
  const lines: string[] = [];
  for (const d of delta) {
    if (d.del.length > 0) lines.push(`delete element ip ${table} ${d.name} { ${d.del.join(', ')} }`);
    if (d.add.length > 0) lines.push(`add element ip ${table} ${d.name} { ${d.add.join(', ')} }`);
  }
  lines.push(`flush set ip ${table} ${DIGEST_SET}`, `add element ip ${table} ${DIGEST_SET} { ${digestElement(digest)} }`);
  return `${lines.join('\n')}\n`;
}

/**
 * The `ipset restore` script applying a delta to sets named `prefix + name` (without -exist:
 * an element that is already there, or missing, fails the restore, so the caller replaces
 * everything instead).
 */
export function ipsetDeltaScript(prefix: string, delta: readonly SetDelta[]): string {
  const lines: string[] = [];
  for (const d of delta) {
    for (const ip of d.del) lines.push(`del ${prefix}${d.name} ${ip}`);
    for (const ip of d.add) lines.push(`add ${prefix}${d.name} ${ip}`);
  }
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
