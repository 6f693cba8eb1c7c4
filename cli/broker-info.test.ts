import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError, createCA } from '../core/index.ts';
import { readBrokerInfo, writeBrokerInfo, type BrokerInfo } from './broker-info.ts';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-binfo-'));
const ca = createCA({ commonName: 'test-ca', validDays: 1 });
const good: BrokerInfo = {
  apiVersion: 'isthmus.dev/v1alpha1', kind: 'BrokerInfo', brokers: ['172.29.0.11:31000'], joinAddresses: ['172.29.0.11:31001'], caPem: ca.certPem,
  clusterset: { cableDriver: 'wireguard', globalAddressing: false }, token: `ijt_0123456789abcdef.${'A'.repeat(43)}`, tokenExpiresAt: '2030-01-01T00:00:00.000Z',
};

async function codeOf(file: string): Promise<{ code: string; message: string } | undefined> {
  try {
    await readBrokerInfo(file);
    return undefined;
  } catch (err) {
    assert.instance(err, IsthmusError);
    return { code: (err as IsthmusError).code, message: (err as IsthmusError).message };
  }
}

function put(name: string, content: string, mode = 0o600): string {
  const f = join(dir, name);
  writeFileSync(f, content, { mode });
  chmodSync(f, mode);
  return f;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('written with mode 0600 and read back', async () => {
  const f = join(dir, 'good.json');
  await writeBrokerInfo(f, good);
  assert.equal(await readBrokerInfo(f), good);
});

test('bad input: each refused with a code and what to do', async () => {
  const cases: [string, string, RegExp][] = [
    [join(dir, 'missing.json'), ErrorCodes.NOT_FOUND, /broker deploy/],
    [put('open.json', JSON.stringify(good), 0o644), ErrorCodes.PERMISSION_DENIED, /chmod 600/],
    [put('notjson.json', '{"kind": '), ErrorCodes.INVALID_ARGUMENT, /not JSON/],
    [put('kind.json', JSON.stringify({ ...good, kind: 'Other' })), ErrorCodes.INVALID_ARGUMENT, /not a BrokerInfo/],
    [put('brokers.json', JSON.stringify({ ...good, brokers: ['no-port'] })), ErrorCodes.INVALID_ARGUMENT, /brokers must list host:port/],
    [put('ca.json', JSON.stringify({ ...good, caPem: 'garbage' })), ErrorCodes.INVALID_ARGUMENT, /caPem is not a CA/],
    [put('driver.json', JSON.stringify({ ...good, clusterset: { cableDriver: 'gre', globalAddressing: false } })), ErrorCodes.INVALID_ARGUMENT, /cableDriver/],
    [put('token.json', JSON.stringify({ ...good, token: 'ijt_123.abc' })), ErrorCodes.BAD_TOKEN, /malformed/],
  ];
  for (const [file, code, hint] of cases) {
    const r = await codeOf(file);
    assert.is(r?.code, code, file);
    assert.match(r?.message ?? '', hint, file);
  }
});

test.run();
