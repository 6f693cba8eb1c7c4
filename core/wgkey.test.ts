import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, isIsthmusError } from './errors.ts';
import { isWireguardKey, wireguardKeyPair, wireguardPublicKeyOf } from './wgkey.ts';

test('a generated pair is two distinct WireGuard keys and the public key derives from the private one', () => {
  const a = wireguardKeyPair();
  const b = wireguardKeyPair();
  assert.ok(isWireguardKey(a.privateKey));
  assert.ok(isWireguardKey(a.publicKey));
  assert.is.not(a.privateKey, b.privateKey);
  assert.is(wireguardPublicKeyOf(a.privateKey), a.publicKey);
});

test('the public key matches RFC 7748 test vector (Alice)', () => {
  const priv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
  const pub = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');
  assert.is(wireguardPublicKeyOf(priv), pub);
});

test('the public key matches `wg pubkey` when wg is installed', () => {
  let wgPub: string;
  const { privateKey, publicKey } = wireguardKeyPair();
  try {
    wgPub = execFileSync('wg', ['pubkey'], { input: privateKey, encoding: 'utf8' }).trim();
  } catch {
    return; // wireguard-tools absent: the RFC vector above covers the maths
  }
  assert.is(publicKey, wgPub);
});

test('malformed keys are refused without echoing them', () => {
  for (const bad of ['', 'abc', 'A'.repeat(44), `${'A'.repeat(42)}==`, `${Buffer.alloc(31).toString('base64')}`, `${'A'.repeat(42)}B=`]) {
    assert.is(isWireguardKey(bad), false, bad);
  }
  assert.is(isWireguardKey(42), false);
  const secretish = `${'Z'.repeat(43)}`;
  try {
    wireguardPublicKeyOf(secretish);
    assert.unreachable('should throw');
  } catch (err) {
    assert.ok(isIsthmusError(err, ErrorCodes.INVALID_ARGUMENT));
    assert.not.match((err as Error).message, secretish);
  }
});

test.run();
