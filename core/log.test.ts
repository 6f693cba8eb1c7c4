import { Writable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from './log.ts';

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, lines: () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('JSON lines bound to component and cluster', () => {
  const c = capture();
  const log = createLogger({ component: 'gateway', cluster: 'c1', destination: c.stream, level: 'info' });
  log.info({ peer: 'c2' }, 'cable up');
  const [line] = c.lines();
  assert.is(line?.['component'], 'gateway');
  assert.is(line?.['cluster'], 'c1');
  assert.is(line?.['peer'], 'c2');
  assert.is(line?.['msg'], 'cable up');
});

test('secret fields are redacted, at top level and one level down', () => {
  const c = capture();
  const log = createLogger({ component: 'certs', destination: c.stream, level: 'info' });
  const secret = 'c2VjcmV0LWtleS1tYXRlcmlhbA==';
  log.info({ privateKey: secret, psk: secret, token: secret, peer: { publicKey: 'pub', privateKey: secret, keyPem: secret } }, 'loaded');
  const text = JSON.stringify(c.lines());
  assert.not.match(text, secret);
  assert.match(text, '"publicKey":"pub"');
  assert.match(text, '[redacted]');
});

test.run();
