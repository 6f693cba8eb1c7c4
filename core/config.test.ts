import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bool, int, list, oneOf, str, validateConfig, custom } from './config.ts';
import { ErrorCodes, IsthmusError } from './errors.ts';
import { errorCode } from './testing.ts';

const schema = {
  name: str('cluster id', undefined, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'is not an RFC-1123 label'),
  port: int('listen port (default 8443)', 8443, 1, 65535),
  debug: bool('verbose logs (default false)', false),
  driver: oneOf('cable driver (default wireguard)', ['wireguard', 'ipsec', 'vxlan'] as const, 'wireguard'),
  peers: list('peers', str('peer')),
  even: custom('an even number', (raw) => {
    const n = Number(raw ?? 2);
    if (n % 2 !== 0) throw new Error(`${n} is odd`);
    return n;
  }),
};

test('applies defaults and parses strings', () => {
  const c = validateConfig(schema, { name: 'c1', port: '9000', debug: 'true', peers: 'a, b' });
  assert.equal(c, { name: 'c1', port: 9000, debug: true, driver: 'wireguard', peers: ['a', 'b'], even: 2 });
});

test('result is deeply frozen', () => {
  const c = validateConfig(schema, { name: 'c1', peers: ['x'] });
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.peers));
  assert.throws(() => {
    (c as { port: number }).port = 1;
  });
});

test('reports every problem at once, with the field name', () => {
  try {
    validateConfig(schema, { name: 'Bad_Name', port: 70000, driver: 'gre', debug: 'maybe', even: 3, typo: 1 });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, IsthmusError);
    const e = err as IsthmusError;
    assert.is(e.code, ErrorCodes.INVALID_CONFIG);
    for (const part of ['name: "Bad_Name" is not an RFC-1123 label', 'port: must be between 1 and 65535', 'driver: must be one of wireguard, ipsec, vxlan', 'debug: must be true or false', 'even: 3 is odd', 'typo: unknown option']) {
      assert.ok(e.message.includes(part), `message lacks ${part}: ${e.message}`);
    }
  }
});

test('required field without default', () => {
  assert.is(errorCode(() => validateConfig(schema, {})), ErrorCodes.INVALID_CONFIG);
});

test('list items are validated with their index', () => {
  const s = { ports: list('ports', int('port', undefined, 1, 10)) };
  try {
    validateConfig(s, { ports: '1,99' });
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, 'ports: item 2: must be between 1 and 10');
  }
});

test.run();
