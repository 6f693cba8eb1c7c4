import { messageOf, systemClock, type Clock, type Logger } from '../core/index.ts';
import type { ProbeVerdict } from './desired.ts';
import type { NatProbeResult, NatProbeTarget } from './nat-probe.ts';

/**
 * What the NAT probes found, per remote cluster, for the engine: which endpoints to
 * probe (new or changed addresses; again every `reprobeMs` while its cable is in
 * error), the verdicts desiredCables may use, and whether a remote saw this gateway
 * behind NAT. Probes run in the background; `onChange` is called when one ends with a
 * result that changes the choice (verdict, else the guess) or the NAT seen, so the
 * engine reconciles again. A result for an endpoint that changed or went away while
 * it was probed is dropped.
 */
export type NatDiscoveryState = 'private' | 'public' | 'unanswered' | 'pending';

export interface NatCandidate extends NatProbeTarget {
  /** What desiredCables chooses without a verdict. */
  readonly guess: ProbeVerdict;
}

interface Entry {
  readonly key: string;
  guess: ProbeVerdict;
  readonly target: NatProbeTarget;
  result: NatProbeResult | undefined;
  probing: boolean;
  probedAt: number;
}

export interface NatDiscoveryOptions {
  readonly probe: (target: NatProbeTarget) => Promise<NatProbeResult>;
  readonly onChange: () => void;
  /** How often an endpoint whose cable is in error is probed again (default 30 s). */
  readonly reprobeMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** How many remotes must agree on the address they saw before this gateway takes itself to be behind NAT (default 2). */
  readonly quorum?: number;
}

const keyOf = (t: NatProbeTarget): string => `${t.privateIp} ${t.publicIp} ${t.port}`;

export class NatDiscovery {
  readonly #o: NatDiscoveryOptions;
  readonly #clock: Clock;
  readonly #reprobeMs: number;
  readonly #quorum: number;
  #entries = new Map<string, Entry>();

  constructor(options: NatDiscoveryOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#reprobeMs = options.reprobeMs ?? 30_000;
    this.#quorum = options.quorum ?? 2;
  }

  /** The endpoints to know about now: drops the others, probes the new and the changed ones. */
  update(candidates: readonly NatCandidate[]): void {
    const next = new Map<string, Entry>();
    for (const c of candidates) {
      const { guess, ...target } = c;
      const have = this.#entries.get(c.cluster);
      const key = keyOf(target);
      if (have !== undefined && have.key === key) {
        have.guess = guess;
        next.set(c.cluster, have);
        continue;
      }
      const entry: Entry = { key, guess, target, result: undefined, probing: false, probedAt: 0 };
      next.set(c.cluster, entry);
      this.#start(entry);
    }
    this.#entries = next;
  }

  /** Probes again the given clusters (their cables are in error) when the last probe is `reprobeMs` old. */
  reprobe(clusters: Iterable<string>): void {
    for (const cluster of clusters) {
      const e = this.#entries.get(cluster);
      if (e !== undefined && !e.probing && this.#clock.now() - e.probedAt >= this.#reprobeMs) this.#start(e);
    }
  }

  /** Forgets everything (standing down); probes under way are then dropped. */
  clear(): void {
    this.#entries = new Map();
  }

  verdicts(): Map<string, ProbeVerdict> {
    const out = new Map<string, ProbeVerdict>();
    for (const [cluster, e] of this.#entries) if (e.result?.verdict !== undefined) out.set(cluster, e.result.verdict);
    return out;
  }

  states(): Map<string, NatDiscoveryState> {
    return new Map([...this.#entries].map(([cluster, e]) => [cluster, e.result === undefined ? 'pending' : e.result.verdict ?? 'unanswered']));
  }

  /**
   * The address at least `quorum` (default 2) remotes agree they saw this gateway at,
   * when it is not its own, else undefined. One remote's answer never decides this
   * gateway's own NAT status — it could lie, and that status switches NAT traversal on
   * every cable (issue 10 finding 7); it counts for the cable to that remote only
   * (`seenBehindNatBy`).
   */
  get natAddress(): string | undefined {
    const votes = new Map<string, number>();
    for (const e of this.#entries.values()) {
      const ip = e.result?.behindNat === true ? e.result.seen?.ip : undefined;
      if (ip !== undefined) votes.set(ip, (votes.get(ip) ?? 0) + 1);
    }
    const agreed = [...votes].filter(([, n]) => n >= this.#quorum).sort(([a, n], [b, m]) => m - n || a.localeCompare(b));
    return agreed[0]?.[0];
  }

  /** The remotes whose probe saw this gateway behind NAT: their cables use NAT traversal. */
  seenBehindNatBy(): Set<string> {
    return new Set([...this.#entries].filter(([, e]) => e.result?.behindNat === true).map(([cluster]) => cluster));
  }

  #start(entry: Entry): void {
    entry.probing = true;
    entry.probedAt = this.#clock.now();
    this.#o.probe(entry.target).then(
      (result) => {
        entry.probing = false;
        if (this.#entries.get(entry.target.cluster) !== entry) return;
        const before = entry.result;
        entry.result = result;
        this.#o.logger?.debug({ remote: entry.target.cluster, verdict: result.verdict ?? 'unanswered', behindNat: result.behindNat }, 'nat probe done');
        const choice = (r: NatProbeResult | undefined): string => `${r?.verdict ?? entry.guess} ${r?.behindNat ?? false}`;
        if (choice(before) !== choice(result)) this.#o.onChange();
      },
      (err: unknown) => {
        entry.probing = false;
        this.#o.logger?.warn({ remote: entry.target.cluster, err: messageOf(err) }, 'nat probe failed');
      },
    );
  }
}
