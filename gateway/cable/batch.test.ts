import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeRunner } from '../../core/index.ts';
import { parseBatchErrors, runBatch } from './batch.ts';

test('parseBatchErrors: each failed line with the message before it; complete only when every message is attributed', () => {
  // what iproute2 6.1 printed for `ip -force -batch -` on this machine
  const run = 'Cannot find device "d0"\nCommand failed -:2\nRTNETLINK answers: File exists\nCommand failed -:4\n';
  assert.equal(parseBatchErrors(run), { failed: new Map([[2, 'Cannot find device "d0"'], [4, 'RTNETLINK answers: File exists']]), complete: true });
  const stopped = `${run}Error: any valid prefix is expected rather than "10.8.0.0/33".\n`;
  assert.equal(parseBatchErrors(stopped).complete, false, 'a parse error makes iproute2 exit without naming the line');
  assert.equal(parseBatchErrors('').failed.size, 0);
  assert.equal(parseBatchErrors('Command failed -:1\n').failed.get(1), 'failed');
});

test('runBatch: no items, no command; all lines on stdin of one -force -batch; failed lines mapped to their items', async () => {
  const none = new FakeRunner();
  assert.equal((await runBatch(none, 'ip', [])).size, 0);
  assert.equal(none.calls, []);
  const r = new FakeRunner().when('ip', ['-force', '-batch', '-'], { code: 1, stderr: 'RTNETLINK answers: Operation not permitted\nCommand failed -:2\n' });
  const failed = await runBatch(r, 'ip', [{ args: ['route', 'replace', '10.1.0.0/16', 'dev', 'x'] }, { args: ['route', 'replace', '10.2.0.0/16', 'dev', 'x'] }]);
  assert.equal(r.calls.map((c) => c.options.input), ['route replace 10.1.0.0/16 dev x\nroute replace 10.2.0.0/16 dev x\n']);
  assert.equal([...failed], [[1, 'ip route replace 10.2.0.0/16 dev x: RTNETLINK answers: Operation not permitted (not permitted: the gateway needs root or CAP_NET_ADMIN)']]);
});

test('runBatch: iproute2 stopped early: the lines after the last reported one run one by one; for deletions "already gone" is done', async () => {
  const r = new FakeRunner()
    .when('bridge', ['-force', '-batch', '-'], { code: 255, stderr: 'x\nCommand failed -:1\nError: bad\n' })
    .when('bridge', ['fdb', 'del', 'b'], { code: 2, stderr: 'RTNETLINK answers: No such file or directory\n' })
    .when('bridge', ['fdb', 'del', 'c'], { code: 255, stderr: 'Error: bad\n' });
  const items = ['a', 'b', 'c', 'd'].map((m) => ({ args: ['fdb', 'del', m] }));
  const failed = await runBatch(r, 'bridge', items, { gone: /No such file/ });
  assert.equal([...failed.keys()], [0, 2]);
  assert.equal(failed.get(2), 'bridge fdb del c: Error: bad');
  assert.equal(r.lines().slice(1), ['bridge fdb del b', 'bridge fdb del c', 'bridge fdb del d']);
  const silent = new FakeRunner().when('ip', ['-force'], { code: 1, stderr: '' });
  assert.equal((await runBatch(silent, 'ip', [{ args: ['route', 'del', '10.0.0.0/8'] }])).size, 0, 'nothing reported: each line re-run on its own (here it succeeds)');
  assert.equal(silent.lines(), ['ip -force -batch -', 'ip route del 10.0.0.0/8']);
});

test.run();
