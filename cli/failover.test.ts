import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { outageMs, probeScript, type Sample } from './failover.ts';

const s = (t: number, ok = true): Sample => ({ t, ok });

test('outage: the longest gap between answers from the last before the kill to the first after the take-over', () => {
  // answers every 200 ms, killed at 1000, nothing from 1100 to 3400, new gateway at 3000
  const samples = [s(600), s(800), s(1000), s(2100, false), s(3200, false), s(3400), s(3600)];
  assert.is(outageMs(samples, 1000, 3000), 2400);
  // a seamless handover: the regular gap only
  assert.is(outageMs([s(800), s(1000), s(1200), s(1400)], 1100, 1300), 200);
});

test('outage: undefined without a baseline before the kill or an answer after the take-over', () => {
  assert.is(outageMs([s(500, false), s(2000)], 1000, 1500), undefined);
  assert.is(outageMs([s(500), s(1200), s(1600, false)], 1000, 1500), undefined);
  assert.is(outageMs([], 1000, 1500), undefined);
});

test('probe script: bounded by its seconds, one ok/fail line per attempt', () => {
  const [sh, c, script] = probeScript('http://10.2.0.5:8080/hostname', 90);
  assert.equal([sh, c], ['sh', '-c']);
  assert.match(script ?? '', /\+ 90 \)\); while \[ "\$\(date \+%s\)" -lt "\$end" \]/);
  assert.match(script ?? '', /curl -s -o \/dev\/null --max-time 1 'http:\/\/10\.2\.0\.5:8080\/hostname'; then echo ok; else echo fail/);
});

test.run();
