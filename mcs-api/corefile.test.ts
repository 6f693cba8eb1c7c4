import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../core/index.ts';
import { errorCode } from '../core/testing.ts';
import { BEGIN_MARKER, corefileWithStanza, reloads, rootPort, withoutStanza } from './corefile.ts';

const original = '.:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n    }\n    cache 30\n}\n';

test('adds the stanza once, idempotently; removal gives back the original byte for byte', () => {
  const once = corefileWithStanza(original, '10.101.0.53');
  assert.ok(once.startsWith(original));
  assert.ok(once.includes('clusterset.local:53 {\n    errors\n    forward . 10.101.0.53\n    reload\n}'));
  assert.is(corefileWithStanza(once, '10.101.0.53'), once);
  assert.is(once.split(BEGIN_MARKER).length, 2);
  assert.is(corefileWithStanza(once, undefined), original);
  assert.is(withoutStanza(original), original);
});

test('a new target replaces the old; the root block\'s port is used', () => {
  const a = corefileWithStanza(original, '10.101.0.53');
  const b = corefileWithStanza(a, '[fd00::53]:5353');
  assert.ok(b.includes('forward . [fd00::53]:5353') && !b.includes('10.101.0.53'));
  assert.is(rootPort('.:1053 {\n}\n'), 1053);
  assert.ok(corefileWithStanza('.:1053 {\n}\n', '10.0.0.1').includes('clusterset.local:1053 {'));
});

test('a hand-edited stanza is put back; text around it stays', () => {
  const a = corefileWithStanza(original, '10.101.0.53') + 'example.org:53 {\n    forward . 192.0.2.1\n}\n';
  const edited = a.replace('forward . 10.101.0.53', 'forward . 6.6.6.6');
  const fixed = corefileWithStanza(edited, '10.101.0.53');
  assert.ok(fixed.includes('forward . 10.101.0.53') && !fixed.includes('6.6.6.6'));
  assert.ok(fixed.includes('example.org:53 {\n    forward . 192.0.2.1\n}'));
});

test('bad targets are refused; reload detection ignores our stanza', () => {
  for (const t of ['dns.example', '10.0.0.1:0', '10.0.0.1:70000', '10.0.0.1; rm', 'fd00::1']) {
    assert.is(errorCode(() => corefileWithStanza(original, t)), ErrorCodes.INVALID_ARGUMENT, t);
  }
  assert.not.ok(reloads(corefileWithStanza(original, '10.0.0.1')));
  assert.ok(reloads('.:53 {\n    reload\n}\n'));
});

test('NodeLocal DNSCache: the stanza binds where the Corefile binds', () => {
  const nodelocal = 'cluster.local:53 {\n    bind 169.254.20.10 10.96.0.10\n    forward . 10.96.0.11\n}\n';
  assert.ok(corefileWithStanza(nodelocal, '10.101.0.53').includes('clusterset.local:53 {\n    bind 169.254.20.10 10.96.0.10\n    errors'));
  assert.not.ok(corefileWithStanza(original, '10.101.0.53').includes('bind'));
});

test.run();
