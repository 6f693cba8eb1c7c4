import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, createCA, issueCertificate, silentLogger, type Logger } from '../core/index.ts';
import { FakeRunner } from '../core/exec.ts';
import { errorCode } from '../core/testing.ts';
import { keepPrivate, setupDriver } from './drivers.ts';

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

test('ipsec certificates: --tls-name picks NAME.crt/NAME.key in --tls-dir (one folder for every gateway node); a name that is no file stem is refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-tls-name-'));
  try {
    const ca = createCA({ commonName: 'test CA', validDays: 1 });
    for (const node of ['c1-n1', 'c1-n2']) {
      const c = issueCertificate({ ca, commonName: `${node}.c1`, organizations: ['isthmus:gateway'], usages: ['server', 'client'], validDays: 1 });
      writeFileSync(join(dir, `${node}.crt`), c.certPem);
      writeFileSync(join(dir, `${node}.key`), c.keyPem, { mode: 0o600 });
    }
    writeFileSync(join(dir, 'ca.crt'), ca.certPem);
    const base = { name: 'ipsec' as const, runner: new FakeRunner(), stateDir: join(dir, 'state'), tlsDir: dir, logger: silentLogger() };
    assert.is(setupDriver({ ...base, tlsName: 'c1-n2' }).backend['cert-cn'], 'c1-n2.c1');
    assert.is(errorCode(() => setupDriver({ ...base, tlsName: '../etc/x' })), ErrorCodes.INVALID_CONFIG);
    assert.is(errorCode(() => setupDriver(base)), ErrorCodes.INVALID_CONFIG, 'no tls.crt in a per-node folder');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('finding 6: PSK mode is refused unless marked insecure, and then warned about', () => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-psk-'));
  try {
    const psk = join(dir, 'psk');
    writeFileSync(psk, 'a'.repeat(64), { mode: 0o600 });
    const base = { name: 'ipsec' as const, runner: new FakeRunner(), stateDir: join(dir, 'state'), pskFile: psk };
    assert.is(errorCode(() => setupDriver({ ...base, logger: silentLogger() })), ErrorCodes.INVALID_CONFIG);
    const warnings: string[] = [];
    const logger = Object.create(silentLogger()) as Logger;
    logger.warn = ((m: unknown) => void warnings.push(String(m))) as Logger['warn'];
    assert.is(setupDriver({ ...base, logger, insecureSharedPsk: true }).secrets['psk'], 'a'.repeat(64));
    assert.match(warnings.join(' '), /any member can impersonate any other/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
