import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from './errors.ts';
import { FakeRunner, SystemRunner } from './exec.ts';
import { errorCodeAsync } from './testing.ts';

test('SystemRunner returns output and passes stdin', async () => {
  const r = await new SystemRunner().run('sh', ['-c', 'cat; echo err >&2'], { input: 'hello' });
  assert.equal(r, { code: 0, stdout: 'hello', stderr: 'err\n' });
});

test('SystemRunner: non-zero exit is COMMAND_FAILED with stderr, unless allowFailure', async () => {
  const runner = new SystemRunner();
  try {
    await runner.run('sh', ['-c', 'echo nope >&2; exit 3']);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, ErrorCodes.COMMAND_FAILED);
    assert.match((err as Error).message, 'exited 3: nope');
  }
  const r = await runner.run('sh', ['-c', 'exit 4'], { allowFailure: true });
  assert.is(r.code, 4);
});

test('SystemRunner: a missing program is MISSING_DEPENDENCY naming the package and ./setup', async () => {
  try {
    await new SystemRunner().run('/nonexistent/wg', ['show']);
    assert.unreachable();
  } catch (err) {
    assert.is((err as IsthmusError).code, ErrorCodes.MISSING_DEPENDENCY);
    assert.match((err as Error).message, 'wireguard-tools');
    assert.match((err as Error).message, './setup');
  }
});

test('SystemRunner: timeout kills the command', async () => {
  assert.is(await errorCodeAsync(new SystemRunner().run('sleep', ['5'], { timeoutMs: 100 })), ErrorCodes.COMMAND_FAILED);
});

test('SystemRunner: abort signal', async () => {
  const ac = new AbortController();
  const p = new SystemRunner().run('sleep', ['5'], { signal: ac.signal });
  ac.abort();
  assert.is(await errorCodeAsync(p), ErrorCodes.ABORTED);
});

test('FakeRunner records calls and answers by prefix', async () => {
  const fake = new FakeRunner().when('wg', ['show'], { stdout: 'peers' }).when('ip', ['link', 'add'], { code: 2, stderr: 'exists' });
  assert.is((await fake.run('wg', ['show', 'isthmus-wg', 'dump'])).stdout, 'peers');
  assert.is(await errorCodeAsync(fake.run('ip', ['link', 'add', 'x'])), ErrorCodes.COMMAND_FAILED);
  assert.is((await fake.run('ip', ['link', 'add', 'x'], { allowFailure: true })).code, 2);
  assert.is((await fake.run('nft', ['list', 'ruleset'])).code, 0);
  assert.equal(fake.lines(), ['wg show isthmus-wg dump', 'ip link add x', 'ip link add x', 'nft list ruleset']);
});

test.run();
