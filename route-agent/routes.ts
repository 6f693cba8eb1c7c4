import type { CommandRunner } from '../core/index.ts';
import type { RouteSpec, RuleSpec } from './desired.ts';

/**
 * The node's routes and rules of the route agent, through iproute2. It owns the routes
 * of its tables and the rules at its preferences, and nothing else.
 *
 * Invariants: `set(routes, rules)` reads what exists (one `ip -j route show` per table,
 * one `ip -j rule show`), and applies only the difference in one `ip -force -batch -`:
 * additions and replacements first (rules that let main answer before our fail-closed
 * routes come before those routes), deletions last. Called twice with the same input,
 * the second call runs no modifying command. A line the kernel refuses fails alone
 * (`-force`); the result says which, read back from the kernel.
 */
export interface ApplyResult {
  /** Lines sent to `ip -batch` (0 when nothing changed). */
  readonly changes: number;
  /** Routes or rules the kernel did not take, with its reason. */
  readonly failed: readonly string[];
}

interface IpRoute {
  dst?: string;
  type?: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  metrics?: { mtu?: number }[];
}

interface IpRule {
  priority?: number;
  src?: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  table?: string;
  suppress_prefixlen?: number;
}

const prefixed = (addr: string | undefined, len: number | undefined): string | undefined =>
  addr === undefined || addr === 'all' ? undefined : `${addr}/${len ?? 32}`;

/** A route as the words after `ip route replace` (its identity is table + dst). */
export function routeArgs(r: RouteSpec): string {
  const words = r.type === 'unreachable' ? ['unreachable', r.dst] : [r.dst];
  if (r.via !== undefined) words.push('via', r.via);
  if (r.dev !== undefined) words.push('dev', r.dev);
  if (r.onlink === true) words.push('onlink');
  words.push('table', String(r.table));
  if (r.mtu !== undefined) words.push('mtu', String(r.mtu));
  return words.join(' ');
}

export function ruleArgs(r: RuleSpec): string {
  const words = ['pref', String(r.pref)];
  if (r.from !== undefined) words.push('from', r.from);
  if (r.to !== undefined) words.push('to', r.to);
  words.push('lookup', String(r.table));
  if (r.suppressPrefixLength !== undefined) words.push('suppress_prefixlength', String(r.suppressPrefixLength));
  return words.join(' ');
}

function normaliseDst(dst: string | undefined): string {
  if (dst === undefined || dst === 'default') return '0.0.0.0/0';
  return dst.includes('/') ? dst : `${dst}/32`;
}

function routeOf(table: number, r: IpRoute): RouteSpec {
  const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
  return {
    table,
    dst: normaliseDst(r.dst),
    type: r.type === 'unreachable' ? 'unreachable' : 'unicast',
    ...(r.gateway === undefined ? {} : { via: r.gateway }),
    ...(r.dev === undefined ? {} : { dev: r.dev }),
    ...(r.flags?.includes('onlink') === true ? { onlink: true } : {}),
    ...(mtu === undefined ? {} : { mtu }),
  };
}

function ruleOf(r: IpRule): RuleSpec {
  const from = prefixed(r.src, r.srclen);
  const to = prefixed(r.dst, r.dstlen);
  const t = r.table ?? 'main';
  return {
    pref: r.priority ?? 0,
    table: t === 'main' ? 'main' : Number(t),
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
    ...(r.suppress_prefixlen === undefined ? {} : { suppressPrefixLength: r.suppress_prefixlen }),
  };
}

/** Does the kernel's route match the desired one? A desired route without `dev` takes whichever the kernel chose. */
function sameRoute(want: RouteSpec, have: RouteSpec): boolean {
  return want.type === have.type && want.via === have.via && (want.dev === undefined || want.dev === have.dev)
    && (want.onlink ?? false) === (have.onlink ?? false) && want.mtu === have.mtu;
}

export class RouteTable {
  readonly #runner: CommandRunner;
  readonly #tables: readonly number[];
  readonly #prefs: ReadonlySet<number>;

  /** `tables`: the routing tables it owns; `prefs`: the rule preferences it owns. */
  constructor(runner: CommandRunner, tables: readonly number[], prefs: readonly number[]) {
    this.#runner = runner;
    this.#tables = tables;
    this.#prefs = new Set(prefs);
  }

  async routes(): Promise<RouteSpec[]> {
    const out: RouteSpec[] = [];
    for (const table of this.#tables) {
      // an empty table does not exist for the kernel: "FIB table does not exist"
      const r = await this.#runner.run('ip', ['-j', 'route', 'show', 'table', String(table)], { allowFailure: true });
      if (r.code !== 0 || r.stdout.trim() === '') continue;
      out.push(...(JSON.parse(r.stdout) as IpRoute[]).map((x) => routeOf(table, x)));
    }
    return out;
  }

  async rules(): Promise<RuleSpec[]> {
    const r = await this.#runner.run('ip', ['-j', 'rule', 'show']);
    return (JSON.parse(r.stdout || '[]') as IpRule[]).filter((x) => this.#prefs.has(x.priority ?? -1)).map(ruleOf);
  }

  async set(routes: readonly RouteSpec[], rules: readonly RuleSpec[], firstPref: number): Promise<ApplyResult> {
    const haveRoutes = await this.routes();
    const haveRules = await this.rules();
    const key = (r: RouteSpec): string => `${r.table} ${r.dst}`;
    const have = new Map(haveRoutes.map((r) => [key(r), r]));
    const want = new Set(routes.map(key));
    const haveRuleSet = new Set(haveRules.map(ruleArgs));
    const wantRuleSet = new Set(rules.map(ruleArgs));
    const lines: string[] = [];
    const addRules = (early: boolean): void => {
      for (const r of rules) {
        if ((r.pref < firstPref) === early && !haveRuleSet.has(ruleArgs(r))) lines.push(`rule add ${ruleArgs(r)}`);
      }
    };
    addRules(true);
    for (const r of routes) {
      const h = have.get(key(r));
      if (h === undefined || !sameRoute(r, h)) lines.push(`route replace ${routeArgs(r)}`);
    }
    addRules(false);
    for (const h of haveRoutes) if (!want.has(key(h))) lines.push(`route del ${h.type === 'unreachable' ? 'unreachable ' : ''}${h.dst} table ${h.table}`);
    for (const h of haveRules) if (!wantRuleSet.has(ruleArgs(h))) lines.push(`rule del ${ruleArgs(h)}`);
    if (lines.length === 0) return { changes: 0, failed: [] };
    const r = await this.#runner.run('ip', ['-force', '-batch', '-'], { input: `${lines.join('\n')}\n`, allowFailure: true });
    if (r.code === 0) return { changes: lines.length, failed: [] };
    // read back what did not take
    const afterRoutes = new Map((await this.routes()).map((x) => [key(x), x]));
    const afterRules = new Set((await this.rules()).map(ruleArgs));
    const reason = r.stderr.trim().split('\n').filter((l) => !l.startsWith('Command failed')).slice(0, 3).join('; ');
    const failed = [
      ...routes.filter((x) => { const a = afterRoutes.get(key(x)); return a === undefined || !sameRoute(x, a); }).map((x) => `route ${routeArgs(x)}: ${reason}`),
      ...rules.filter((x) => !afterRules.has(ruleArgs(x))).map((x) => `rule ${ruleArgs(x)}: ${reason}`),
    ];
    return { changes: lines.length, failed };
  }

  /** Removes every route of its tables and every rule at its preferences. */
  async cleanup(): Promise<void> {
    await this.set([], [], 0);
  }
}
