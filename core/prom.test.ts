import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from './prom.ts';

/** Each sample line of the text format: name, optional {labels}, a value. */
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/;

function wellFormed(text: string): void {
  assert.ok(text.endsWith('\n'));
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    assert.ok(SAMPLE.test(line), `not a sample line: ${line}`);
  }
}

test('counters and gauges: HELP, TYPE, a line per label set, escaped label values; unlabelled ones show 0 at first', async () => {
  const r = new Registry();
  const c = new Counter<'code' | 'path'>({ name: 'x_requests_total', help: 'Requests\nby code', labelNames: ['code', 'path'], registers: [r] });
  const plain = new Counter({ name: 'x_plain_total', help: 'Plain', registers: [r] });
  const g = new Gauge({ name: 'x_level', help: 'Level', registers: [r] });
  c.inc({ code: 200, path: '/a' });
  c.inc({ path: '/a', code: 200 }, 2);
  c.inc({ code: 500, path: 'say "hi"\\\n' });
  const text = await r.metrics();
  wellFormed(text);
  assert.equal(text.split('\n').slice(0, 4), ['# HELP x_requests_total Requests\\nby code', '# TYPE x_requests_total counter', 'x_requests_total{code="200",path="/a"} 3', 'x_requests_total{code="500",path="say \\"hi\\"\\\\\\n"} 1']);
  assert.match(text, /^x_plain_total 0$/m);
  assert.match(text, /^# TYPE x_level gauge\nx_level 0$/m);
  plain.inc(5);
  g.set(7);
  g.inc();
  g.dec(3);
  assert.match(await r.metrics(), /^x_plain_total 5$/m);
  assert.match(await r.metrics(), /^x_level 5$/m);
});

test('gauges: labelled set, remove, reset, and collect before each exposition', async () => {
  const r = new Registry();
  let n = 0;
  const g = new Gauge<'cluster'>({ name: 'x_records', help: 'Records', labelNames: ['cluster'], registers: [r], collect() { n += 1; this.set({ cluster: 'c1' }, n); } });
  g.set({ cluster: 'c2' }, 4);
  const text = await r.metrics();
  assert.match(text, /^x_records\{cluster="c1"\} 1$/m);
  assert.match(text, /^x_records\{cluster="c2"\} 4$/m);
  g.remove({ cluster: 'c2' });
  assert.not.match(await r.metrics(), /c2/);
  g.reset();
  assert.match(await r.getSingleMetricAsString('x_records'), /^x_records\{cluster="c1"\} 3$/m, 'collect ran again after the reset');
  assert.is(await r.getSingleMetricAsString('nope'), '');
});

test('histograms: cumulative buckets, +Inf, sum and count, per label set', async () => {
  const r = new Registry();
  const h = new Histogram({ name: 'x_seconds', help: 'Time', buckets: [0.1, 1], registers: [r] });
  const hl = new Histogram<'op'>({ name: 'x_op_seconds', help: 'Time by op', labelNames: ['op'], buckets: [1], registers: [r] });
  assert.match(await r.metrics(), /x_seconds_bucket\{le="0.1"\} 0\nx_seconds_bucket\{le="1"\} 0\nx_seconds_bucket\{le="\+Inf"\} 0\nx_seconds_sum 0\nx_seconds_count 0/);
  for (const v of [0.05, 0.5, 0.5, 3]) h.observe(v);
  hl.observe({ op: 'get' }, 2);
  const text = await r.metrics();
  wellFormed(text);
  assert.match(text, /x_seconds_bucket\{le="0.1"\} 1\nx_seconds_bucket\{le="1"\} 3\nx_seconds_bucket\{le="\+Inf"\} 4\nx_seconds_sum 4.05\nx_seconds_count 4/);
  assert.match(text, /x_op_seconds_bucket\{op="get",le="1"\} 0\nx_op_seconds_bucket\{op="get",le="\+Inf"\} 1\nx_op_seconds_sum\{op="get"\} 2\nx_op_seconds_count\{op="get"\} 1/);
});

test('misuse throws at once: wrong labels, a counter going down, a name taken twice, a bad name', () => {
  const r = new Registry();
  const c = new Counter<'a'>({ name: 'x_total', help: 'X', labelNames: ['a'], registers: [r] });
  assert.throws(() => c.inc(), /labels \[\] are not \["a"\]/);
  assert.throws(() => c.inc({ a: 'x', b: 'y' } as never), /are not/);
  assert.throws(() => c.inc({ a: 'x' }, -1), /cannot go down/);
  assert.throws(() => new Counter({ name: 'x_total', help: 'again', registers: [r] }), /already registered/);
  assert.throws(() => new Gauge({ name: 'bad-name', help: 'X' }), /invalid metric name/);
});

test('default metrics: the process figures under the prefix, well formed, CPU counting up', async () => {
  const r = new Registry();
  collectDefaultMetrics({ register: r, prefix: 'isthmus_x_' });
  const first = await r.metrics();
  wellFormed(first);
  for (const name of ['process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total', 'process_start_time_seconds', 'process_resident_memory_bytes', 'process_open_fds', 'nodejs_heap_size_total_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_external_memory_bytes']) {
    assert.match(first, new RegExp(`^isthmus_x_${name} [0-9.e+]+$`, 'm'), name);
  }
  assert.match(first, /^# TYPE isthmus_x_process_cpu_seconds_total counter$/m);
  assert.match(first, new RegExp(`^isthmus_x_nodejs_version_info\\{version="${process.version}"\\} 1$`, 'm'));
  const rss = Number(/^isthmus_x_process_resident_memory_bytes (\S+)$/m.exec(first)?.[1]);
  assert.ok(rss > 10_000_000, `RSS ${rss}`);
  const cpu = (t: string): number => Number(/^isthmus_x_process_cpu_seconds_total (\S+)$/m.exec(t)?.[1]);
  const t0 = Date.now();
  while (Date.now() - t0 < 30) Math.sqrt(Math.random()); // spend some CPU
  assert.ok(cpu(await r.metrics()) > cpu(first));
});

test.run();
