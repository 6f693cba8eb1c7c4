import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { errorCodeAsync } from '../core/testing.ts';
import { exportCommand, showCommand, unexportCommand } from './mcs-verbs.ts';

// Bad input is refused before any cluster is contacted (no kubeconfig is read).
test('export/unexport: kind, one name, -n required, valid names, timeout range', async () => {
  for (const argv of [['svc'], ['deployment', 'echo', '-n', 'demo'], ['service', 'echo'], ['service', 'a', 'b', '-n', 'demo'], ['service', 'Echo', '-n', 'demo'], ['service', 'echo', '-n', 'Demo_1']]) {
    assert.is(await errorCodeAsync(exportCommand.run(argv)), ErrorCodes.INVALID_ARGUMENT, argv.join(' '));
    assert.is(await errorCodeAsync(unexportCommand.run(argv)), ErrorCodes.INVALID_ARGUMENT, argv.join(' '));
  }
  assert.is(await errorCodeAsync(exportCommand.run(['service', 'echo', '-n', 'demo', '--timeout', '0'])), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(exportCommand.run(['service', 'echo', '-n', 'demo', '--kubeconfig', '/nonexistent'])), ErrorCodes.NOT_FOUND);
});

test('show: exports or imports, -o table|json|yaml', async () => {
  assert.is(await errorCodeAsync(showCommand.run(['gateways'])), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(showCommand.run([])), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(showCommand.run(['exports', '-o', 'xml'])), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(showCommand.run(['imports', '-n', 'Bad'])), ErrorCodes.INVALID_ARGUMENT);
});

test.run();
