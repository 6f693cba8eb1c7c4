import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../core/index.ts';
import { keepPrivate } from './drivers.ts';

test('issue 10 finding 12: an existing key file or state folder readable by others is narrowed again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-keep-private-'));
  try {
    const key = join(dir, 'wireguard.key');
    writeFileSync(key, 'secret\n');
    chmodSync(key, 0o644);
    chmodSync(dir, 0o755);
    keepPrivate(key, silentLogger());
    keepPrivate(dir, silentLogger(), 0o700);
    assert.is(statSync(key).mode & 0o777, 0o600);
    assert.is(statSync(dir).mode & 0o777, 0o700);
    chmodSync(key, 0o400);
    keepPrivate(key, silentLogger());
    assert.is(statSync(key).mode & 0o777, 0o400, 'a mode already private is left alone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
