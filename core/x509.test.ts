import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import forge from 'node-forge';
import { ErrorCodes, IsthmusError } from './errors.ts';
import { certificateInfo, createCA, generateKeyPair, issueCertificate, keyMatchesCertificate, verifyChain } from './x509.ts';

const DAY = 86_400_000;
const ca = createCA({ commonName: 'unit-ca', validDays: 30 });
const other = createCA({ commonName: 'foreign-ca', validDays: 30 });

function codeAndReason(fn: () => unknown): [string, unknown] {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof IsthmusError)) return ['not an IsthmusError', undefined];
    return [err.code, err.context['reason']];
  }
  return ['no error', undefined];
}

function ext(certPem: string, name: string): Record<string, unknown> {
  const e = forge.pki.certificateFromPem(certPem).getExtension(name);
  assert.ok(e, `extension ${name} is missing`);
  return e as Record<string, unknown>;
}

test('generateKeyPair gives a native RSA-2048 key pair', () => {
  const kp = generateKeyPair();
  assert.match(kp.keyPem, /^-----BEGIN RSA PRIVATE KEY-----/);
  assert.match(kp.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
  const k = createPrivateKey(kp.keyPem);
  assert.is(k.asymmetricKeyType, 'rsa');
  assert.is(k.asymmetricKeyDetails?.modulusLength, 2048);
});

test('createCA is a self-signed CA with the right extensions', () => {
  const info = certificateInfo(ca.certPem);
  assert.is(info.commonName, 'unit-ca');
  assert.is(info.issuerCommonName, 'unit-ca');
  assert.ok(info.isCA);
  assert.ok(keyMatchesCertificate(ca.keyPem, ca.certPem));
  const x = new X509Certificate(ca.certPem);
  assert.ok(x.verify(x.publicKey), 'self-signature verifies');
  assert.is(ext(ca.certPem, 'basicConstraints')['critical'], true);
  assert.is(ext(ca.certPem, 'keyUsage')['keyCertSign'], true);
  const days = (info.notAfter.getTime() - Date.now()) / DAY;
  assert.ok(days > 29.9 && days <= 30, `CA valid for ${days} days`);
  assert.ok(info.notBefore.getTime() < Date.now() - 60_000, 'notBefore is back-dated for clock skew');
});

test('issueCertificate: server and client certificate with SANs, groups and key ids', () => {
  const c = issueCertificate({
    ca, commonName: 'system:admin', organizations: ['system:masters', 'ops'],
    dnsNames: ['localhost', 'kubernetes.default.svc'], ipAddresses: ['127.0.0.1', 'fd00:10::1'],
    usages: ['server', 'client'], validDays: 2,
  });
  const info = certificateInfo(c.certPem);
  assert.is(info.commonName, 'system:admin');
  assert.equal(info.organizations, ['system:masters', 'ops']);
  assert.equal(info.dnsNames, ['localhost', 'kubernetes.default.svc']);
  assert.equal(info.ipAddresses, ['127.0.0.1', 'fd00:10::1']);
  assert.is(info.issuerCommonName, 'unit-ca');
  assert.not.ok(info.isCA);
  assert.match(info.serial, /^[0-9A-F]{32}$/);
  assert.ok(Number.parseInt(info.serial.slice(0, 2), 16) < 0x80, 'serial is positive');
  const eku = ext(c.certPem, 'extKeyUsage');
  assert.is(eku['serverAuth'], true);
  assert.is(eku['clientAuth'], true);
  assert.is(ext(c.certPem, 'basicConstraints')['cA'], false);
  const aki = ext(c.certPem, 'authorityKeyIdentifier');
  const caSki = forge.pki.certificateFromPem(ca.certPem).generateSubjectKeyIdentifier().toHex();
  assert.ok(String(aki['value']).length > 0);
  assert.ok(forge.util.bytesToHex(String(aki['value'])).includes(caSki), 'AKI names the CA key');
  assert.ok(keyMatchesCertificate(c.keyPem, c.certPem));
  assert.not.ok(keyMatchesCertificate(ca.keyPem, c.certPem));
  verifyChain(c.certPem, ca.certPem);
});

test('client-only certificate has only clientAuth; serials differ', () => {
  const a = issueCertificate({ ca, commonName: 'c1', usages: ['client'], validDays: 1 });
  const b = issueCertificate({ ca, commonName: 'c1', usages: ['client'], validDays: 1 });
  const eku = ext(a.certPem, 'extKeyUsage');
  assert.is(eku['clientAuth'], true);
  assert.not.ok(eku['serverAuth']);
  assert.is.not(certificateInfo(a.certPem).serial, certificateInfo(b.certPem).serial);
});

test('issueCertificate certifies a given key', () => {
  const kp = generateKeyPair();
  const c = issueCertificate({ ca, commonName: 'kubelet', usages: ['client'], validDays: 1, keyPem: kp.keyPem });
  assert.is(c.keyPem, kp.keyPem);
  assert.ok(keyMatchesCertificate(kp.keyPem, c.certPem));
});

test('validity never outlives the CA', () => {
  const c = issueCertificate({ ca, commonName: 'long', usages: ['client'], validDays: 3650 });
  assert.is(certificateInfo(c.certPem).notAfter.getTime(), certificateInfo(ca.certPem).notAfter.getTime());
});

test('verifyChain: wrong CA, expired, not yet valid', () => {
  const foreign = issueCertificate({ ca: other, commonName: 'c1', usages: ['client'], validDays: 1 });
  assert.equal(codeAndReason(() => verifyChain(foreign.certPem, ca.certPem)), [ErrorCodes.BAD_CREDENTIALS, 'wrong-ca']);
  const expired = issueCertificate({ ca, commonName: 'old', usages: ['client'], validDays: 1, notBefore: new Date(Date.now() - 10 * DAY) });
  const oldCa = createCA({ commonName: 'old-ca', validDays: 1, notBefore: new Date(Date.now() - 20 * DAY) });
  assert.throws(() => issueCertificate({ ca: oldCa, commonName: 'x', usages: ['client'], validDays: 1 }), (e: unknown) => e instanceof IsthmusError && e.code === ErrorCodes.BAD_CREDENTIALS && /CA expired/.test(e.message));
  assert.equal(codeAndReason(() => verifyChain(expired.certPem, ca.certPem)), [ErrorCodes.BAD_CREDENTIALS, 'expired']);
  const c = issueCertificate({ ca, commonName: 'now', usages: ['client'], validDays: 1 });
  assert.equal(codeAndReason(() => verifyChain(c.certPem, ca.certPem, new Date(Date.now() - DAY))), [ErrorCodes.BAD_CREDENTIALS, 'not-yet-valid']);
  assert.equal(codeAndReason(() => verifyChain(c.certPem, ca.certPem, new Date(Date.now() + 2 * DAY))), [ErrorCodes.BAD_CREDENTIALS, 'expired']);
  // a leaf used as a CA is refused
  assert.equal(codeAndReason(() => verifyChain(c.certPem, c.certPem))[0], ErrorCodes.BAD_CREDENTIALS);
});

test('bad input is refused with a clear error', () => {
  const bad = (fn: () => unknown, code: string, re: RegExp): void => {
    try {
      fn();
      assert.unreachable('should have thrown');
    } catch (err) {
      assert.instance(err, IsthmusError);
      assert.is((err as IsthmusError).code, code);
      assert.match((err as Error).message, re);
    }
  };
  bad(() => createCA({ commonName: 'x', validDays: 0 }), ErrorCodes.INVALID_ARGUMENT, /validDays must be a positive/);
  bad(() => createCA({ commonName: '', validDays: 1 }), ErrorCodes.INVALID_ARGUMENT, /CA common name must be 1 to 64/);
  bad(() => issueCertificate({ ca, commonName: 'x', usages: [], validDays: 1 }), ErrorCodes.INVALID_ARGUMENT, /at least one/);
  bad(() => issueCertificate({ ca, commonName: 'x', usages: ['client'], validDays: 1, ipAddresses: ['10.0.0.300'] }), ErrorCodes.INVALID_ARGUMENT, /not an IPv4 or IPv6/);
  bad(() => issueCertificate({ ca, commonName: 'x', usages: ['client'], validDays: 1, dnsNames: ['bad name'] }), ErrorCodes.INVALID_ARGUMENT, /not a valid host name/);
  bad(() => issueCertificate({ ca: { certPem: ca.certPem, keyPem: other.keyPem }, commonName: 'x', usages: ['client'], validDays: 1 }), ErrorCodes.BAD_CREDENTIALS, /does not belong/);
  const leaf = issueCertificate({ ca, commonName: 'leaf', usages: ['client'], validDays: 1 });
  bad(() => issueCertificate({ ca: leaf, commonName: 'x', usages: ['client'], validDays: 1 }), ErrorCodes.BAD_CREDENTIALS, /not a CA/);
  bad(() => certificateInfo('garbage'), ErrorCodes.BAD_CREDENTIALS, /not a certificate in PEM/);
  bad(() => issueCertificate({ ca: { certPem: ca.certPem, keyPem: 'nope' }, commonName: 'x', usages: ['client'], validDays: 1 }), ErrorCodes.BAD_CREDENTIALS, /not an RSA private key/);
});

test.run();
