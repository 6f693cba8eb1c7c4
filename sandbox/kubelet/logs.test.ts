import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { logOptions, parseLine, render, select, streamLogs } from './logs.ts';

const LOG = [
  '2026-01-01T00:00:01.000000000Z stdout F one',
  '2026-01-01T00:00:02.000000000Z stderr F two',
  '2026-01-01T00:00:03.000000000Z stdout P thr',
  '2026-01-01T00:00:03.000000000Z stdout F ee',
  '2026-01-01T00:00:04.000000000Z stdout F four',
  '',
].join('\n');

test('CRI lines parse; other text is kept as it is', () => {
  assert.equal(parseLine('2026-01-01T00:00:01.5Z stderr P a b'), { time: '2026-01-01T00:00:01.5Z', stream: 'stderr', full: false, text: 'a b' });
  assert.equal(parseLine('plain text'), { time: '', stream: 'stdout', full: true, text: 'plain text' });
  assert.is(render(parseLine('2026-01-01T00:00:01Z stdout F x'), true), '2026-01-01T00:00:01Z x\n');
  assert.is(render(parseLine('2026-01-01T00:00:01Z stdout P x'), false), 'x');
});

test('tail counts whole lines (a partial piece goes with its line); since filters by time', () => {
  assert.equal(select(LOG, { tailLines: 2 }).map((l) => l.text), ['thr', 'ee', 'four']);
  assert.equal(select(LOG, { tailLines: 1 }).map((l) => l.text), ['four']);
  assert.equal(select(LOG, { tailLines: 0 }), []);
  assert.equal(select(LOG, { since: new Date('2026-01-01T00:00:02Z') }).map((l) => l.text), ['two', 'thr', 'ee', 'four']);
  assert.is(select(LOG, {}).length, 5);
});

test('query options, and a clear message for bad values', () => {
  const now = new Date('2026-01-01T00:01:00Z');
  const o = logOptions(new URLSearchParams('follow=true&tailLines=3&sinceSeconds=30&timestamps=true&limitBytes=10&previous=true'), now);
  assert.equal(o, { follow: true, timestamps: true, previous: true, tailLines: 3, since: new Date('2026-01-01T00:00:30Z'), limitBytes: 10 });
  assert.match(String(logOptions(new URLSearchParams('tailLines=-1'), now)), 'tailLines must be a whole number');
  assert.match(String(logOptions(new URLSearchParams('sinceTime=yesterday'), now)), 'sinceTime must be an RFC 3339 time');
});

test('streamLogs follows appends and a rotation, stops when the container is gone, honours limitBytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-logs-'));
  try {
    const path = join(dir, 'c.log');
    writeFileSync(path, '2026-01-01T00:00:01Z stdout F a\n');
    let alive = true;
    const out: string[] = [];
    const ac = new AbortController();
    const done = streamLogs({ path, alive: () => alive }, { follow: true, timestamps: false, previous: false }, (s) => out.push(s) > 0, ac.signal, 10);
    await new Promise((r) => setTimeout(r, 40));
    appendFileSync(path, '2026-01-01T00:00:02Z stdout F b\n2026-01-01T00:00:02Z stdout P c\n');
    await new Promise((r) => setTimeout(r, 40));
    renameSync(path, `${path}.1`);
    writeFileSync(path, '2026-01-01T00:00:03Z stdout F d\n');
    await new Promise((r) => setTimeout(r, 40));
    alive = false;
    await done;
    assert.equal(out, ['a\n', 'b\n', 'c', 'd\n']);
    const limited: string[] = [];
    await streamLogs({ path, alive: () => false }, { follow: false, timestamps: true, previous: false, limitBytes: 5 }, (s) => limited.push(s) > 0, ac.signal);
    assert.equal(limited.join(''), '2026-');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
