import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PARTIAL_LINE_BYTES, criLine, nanoTime, splitLines } from './shim.ts';

const SHIM = join(import.meta.dirname, 'shim.ts');

function runShim(args: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--no-warnings', SHIM, ...args], { stdio: 'ignore' });
    c.on('close', (code) => resolve(code ?? -1));
  });
}

test('lines split at newlines; a line longer than the bound comes in partial pieces', () => {
  const { lines, rest } = splitLines(Buffer.from('ab'), Buffer.from('c\nde\nf'));
  assert.equal(lines.map((l) => [l.text.toString(), l.full]), [['abc', true], ['de', true]]);
  assert.is(rest.toString(), 'f');
  const long = splitLines(Buffer.alloc(0), Buffer.alloc(PARTIAL_LINE_BYTES + 10, 'x'));
  assert.equal(long.lines.map((l) => [l.text.length, l.full]), [[PARTIAL_LINE_BYTES, false]]);
  assert.is(long.rest.length, 10);
});

test('CRI line format with nanoseconds', () => {
  const d = new Date('2026-01-02T03:04:05.678Z');
  assert.is(nanoTime(d), '2026-01-02T03:04:05.678000000Z');
  assert.is(criLine(d, 'stderr', false, Buffer.from('x')).toString(), '2026-01-02T03:04:05.678000000Z stderr P x\n');
});

test('the shim logs both streams, records the exit code and the pid, and rotates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-shim-'));
  try {
    const log = join(dir, 'c.log');
    const exit = join(dir, 'c.exit');
    assert.is(await runShim([log, exit, '4096', '--', 'sh', '-c', 'echo out; echo err >&2; printf tail; exit 3']), 0);
    const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ').slice(1).join(' ')).sort();
    assert.equal(lines, ['stderr F err', 'stdout F out', 'stdout F tail']);
    assert.is((JSON.parse(readFileSync(exit, 'utf8')) as { code: number }).code, 3);
    assert.ok(Number(readFileSync(`${exit}.pid`, 'utf8')) > 0);
    await runShim([log, exit, '4096', '--', 'sh', '-c', 'i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done']);
    assert.ok(existsSync(`${log}.1`), 'rotated past 4096 bytes');
    assert.ok(readFileSync(log).length <= 4096);
    assert.is(await runShim([log, exit, '4096', '--', '/no/such/program']), 0);
    assert.is((JSON.parse(readFileSync(exit, 'utf8')) as { code: number }).code, 127);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
