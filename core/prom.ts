import { readdirSync } from 'node:fs';

/**
 * Prometheus metrics in the text exposition format (version 0.0.4), our own: counters,
 * gauges and histograms with labels, a registry, and the process's default metrics. It
 * replaces prom-client, whose import alone cost every process ~20 MB of RSS (the node
 * agents' memory targets; BENCHMARKS.md).
 *
 * Invariants:
 * - a metric's label names are fixed at construction; a sample's labels must be exactly
 *   those (a missing or unknown one throws: a bug, not input);
 * - counters only go up (a negative increment throws);
 * - label values are escaped (`\`, `"`, newline), help text too (`\`, newline);
 * - `collect` (a gauge's) runs before each exposition, awaited, in registration order.
 */
export type Labels<L extends string> = Partial<Record<L, string | number>>;

export interface MetricOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
  readonly registers?: readonly Registry[];
}

abstract class Metric<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(o: MetricOptions<L>) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(o.name)) throw new Error(`invalid metric name ${JSON.stringify(o.name)}`);
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    for (const r of o.registers ?? []) r.register(this);
  }

  /** The series key of `labels` (checked against labelNames). */
  protected key(labels: Labels<L> | undefined): string {
    const given = Object.keys(labels ?? {});
    if (given.length !== this.labelNames.length || given.some((k) => !this.labelNames.includes(k as L))) {
      throw new Error(`${this.name}: labels ${JSON.stringify(given)} are not ${JSON.stringify(this.labelNames)}`);
    }
    return this.labelNames.map((n) => `${n}="${escapeLabel(String(labels?.[n] ?? ''))}"`).join(',');
  }

  abstract samples(): Promise<string[]>;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function fmt(v: number): string {
  return Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v);
}

const braces = (k: string): string => (k === '' ? '' : `{${k}}`);

/** (labels?, n?) or (n?): the labels and the amount (default 1). */
function split<L extends string>(labelsOrN: Labels<L> | number | undefined, n: number | undefined): [Labels<L> | undefined, number] {
  return typeof labelsOrN === 'object' ? [labelsOrN, n ?? 1] : [undefined, labelsOrN ?? 1];
}

/** A value per label set (counters and gauges). */
abstract class Scalar<L extends string> extends Metric<L> {
  protected readonly values = new Map<string, number>();
  readonly #collect: ((this: never) => void | Promise<void>) | undefined;

  /** `collect` runs with the metric as `this` before each exposition. */
  constructor(o: MetricOptions<L>, collect: ((this: never) => void | Promise<void>) | undefined) {
    super(o);
    this.#collect = collect;
  }

  /** Forgets the series of `labels`. */
  remove(labels: Labels<L>): void {
    this.values.delete(this.key(labels));
  }

  /** Forgets every series. */
  reset(): void {
    this.values.clear();
  }

  protected add(labels: Labels<L> | undefined, by: number): void {
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  async samples(): Promise<string[]> {
    await this.#collect?.call(this as never);
    // an unlabelled metric always shows (0 before its first change), as prom-client does
    if (this.values.size === 0 && this.labelNames.length === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, v]) => `${this.name}${braces(k)} ${fmt(v)}`);
  }
}

export interface CounterOptions<L extends string> extends MetricOptions<L> {
  /** Runs before each exposition, with the counter as `this` (to count what happened since). */
  readonly collect?: (this: Counter<L>) => void | Promise<void>;
}

export class Counter<L extends string = string> extends Scalar<L> {
  readonly type = 'counter';

  constructor(o: CounterOptions<L>) {
    super(o, o.collect);
  }

  /** inc(), inc(n), inc(labels), inc(labels, n); n ≥ 0. */
  inc(labelsOrN?: Labels<L> | number, n?: number): void {
    const [labels, by] = split(labelsOrN, n);
    if (by < 0) throw new Error(`${this.name}: a counter cannot go down (inc by ${by})`);
    this.add(labels, by);
  }
}

export interface GaugeOptions<L extends string> extends MetricOptions<L> {
  /** Runs before each exposition, with the gauge as `this` (to set it from the current state). */
  readonly collect?: (this: Gauge<L>) => void | Promise<void>;
}

export class Gauge<L extends string = string> extends Scalar<L> {
  readonly type = 'gauge';

  constructor(o: GaugeOptions<L>) {
    super(o, o.collect);
  }

  /** set(value) or set(labels, value). */
  set(labelsOrValue: Labels<L> | number, value?: number): void {
    const [labels, v] = typeof labelsOrValue === 'number' ? [undefined, labelsOrValue] : [labelsOrValue, value ?? 0];
    this.values.set(this.key(labels), v);
  }

  inc(labelsOrN?: Labels<L> | number, n?: number): void {
    this.add(...split(labelsOrN, n));
  }

  dec(labelsOrN?: Labels<L> | number, n?: number): void {
    const [labels, by] = split(labelsOrN, n);
    this.add(labels, -by);
  }
}

export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, ascending (default: Prometheus' usual seconds buckets). */
  readonly buckets?: readonly number[];
}

export class Histogram<L extends string = string> extends Metric<L> {
  readonly type = 'histogram';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(o: HistogramOptions<L>) {
    super(o);
    this.#bounds = [...(o.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])].sort((a, b) => a - b);
  }

  /** observe(value) or observe(labels, value). */
  observe(labelsOrValue: Labels<L> | number, value?: number): void {
    const [labels, v] = typeof labelsOrValue === 'number' ? [undefined, labelsOrValue] : [labelsOrValue, value ?? 0];
    const k = this.key(labels);
    let s = this.#series.get(k);
    if (s === undefined) this.#series.set(k, (s = { counts: this.#bounds.map(() => 0), sum: 0, count: 0 }));
    const i = this.#bounds.findIndex((b) => v <= b);
    if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += v;
    s.count += 1;
  }

  async samples(): Promise<string[]> {
    const out: string[] = [];
    const series = this.#series.size === 0 && this.labelNames.length === 0 ? new Map([['', { counts: this.#bounds.map(() => 0), sum: 0, count: 0 }]]) : this.#series;
    for (const [k, s] of series) {
      let cumulative = 0;
      const le = (b: string): string => braces(k === '' ? `le="${b}"` : `${k},le="${b}"`);
      this.#bounds.forEach((b, i) => {
        cumulative += s.counts[i] ?? 0;
        out.push(`${this.name}_bucket${le(fmt(b))} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${le('+Inf')} ${s.count}`, `${this.name}_sum${braces(k)} ${fmt(s.sum)}`, `${this.name}_count${braces(k)} ${s.count}`);
    }
    return out;
  }
}

type AnyMetric = Metric<string>;

export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #metrics = new Map<string, AnyMetric>();

  register(m: AnyMetric): void {
    if (this.#metrics.has(m.name)) throw new Error(`a metric named ${m.name} is already registered`);
    this.#metrics.set(m.name, m);
  }

  /** Every metric in the text format. */
  async metrics(): Promise<string> {
    const parts: string[] = [];
    for (const m of this.#metrics.values()) parts.push(await expose(m));
    return parts.join('\n') + '\n';
  }

  /** One metric in the text format ('' when there is none of that name). */
  async getSingleMetricAsString(name: string): Promise<string> {
    const m = this.#metrics.get(name);
    return m === undefined ? '' : expose(m);
  }
}

async function expose(m: AnyMetric): Promise<string> {
  const help = m.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
  return [`# HELP ${m.name} ${help}`, `# TYPE ${m.name} ${m.type}`, ...(await m.samples())].join('\n');
}

/**
 * The process's own metrics, named as Prometheus client libraries name them, with `prefix`:
 * CPU seconds (user, system, total), start time, resident memory, open file descriptors,
 * V8 heap total/used, external memory, and the Node version.
 */
export function collectDefaultMetrics(o: { register: Registry; prefix?: string }): void {
  const p = o.prefix ?? '';
  const registers = [o.register];
  const started = Math.round(Date.now() / 1000 - process.uptime());
  // CPU time as counters: each exposition counts the time spent since the last one
  const cpu = (name: string, help: string, of: (u: NodeJS.CpuUsage) => number): void => {
    let last = 0;
    new Counter({
      name: `${p}${name}`, help, registers,
      collect() {
        const now = of(process.cpuUsage()) / 1e6;
        if (now > last) this.inc(now - last);
        last = Math.max(last, now);
      },
    });
  };
  cpu('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', (u) => u.user);
  cpu('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', (u) => u.system);
  cpu('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', (u) => u.user + u.system);
  new Gauge({ name: `${p}process_start_time_seconds`, help: 'Start time of the process since unix epoch in seconds.', registers, collect() { this.set(started); } });
  new Gauge({ name: `${p}process_resident_memory_bytes`, help: 'Resident memory size in bytes.', registers, collect() { this.set(process.memoryUsage.rss()); } });
  new Gauge({
    name: `${p}process_open_fds`, help: 'Number of open file descriptors.', registers,
    collect() {
      try {
        this.set(readdirSync('/proc/self/fd').length);
      } catch {
        this.set(NaN); // no /proc here: not a number rather than a wrong one
      }
    },
  });
  new Gauge({ name: `${p}nodejs_heap_size_total_bytes`, help: 'Process heap size from Node.js in bytes.', registers, collect() { this.set(process.memoryUsage().heapTotal); } });
  new Gauge({ name: `${p}nodejs_heap_size_used_bytes`, help: 'Process heap size used from Node.js in bytes.', registers, collect() { this.set(process.memoryUsage().heapUsed); } });
  new Gauge({ name: `${p}nodejs_external_memory_bytes`, help: 'Node.js external memory size in bytes.', registers, collect() { this.set(process.memoryUsage().external); } });
  new Gauge<'version'>({ name: `${p}nodejs_version_info`, help: 'Node.js version info.', labelNames: ['version'], registers, collect() { this.set({ version: process.version }, 1); } });
}
