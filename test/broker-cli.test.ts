import { test } from './broker-harness.ts';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { certsCommand } from '../cli/certs.ts';
import { brokerCommand } from '../cli/broker.ts';
import { Lab, eventually, freePort, withLab, type EtcdMember } from './broker-harness.ts';

// The two commands as a user runs them: `isthmus certs …` makes the PKI,
// `isthmus broker …` serves, a cluster registers, metrics count it, SIGTERM stops it.

async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return await fn();
  } finally {
    process.stdout.write = write;
  }
}

async function tls(dir: string): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  return { caPem: await readFile(join(dir, 'ca.crt'), 'utf8'), certPem: await readFile(join(dir, 'tls.crt'), 'utf8'), keyPem: await readFile(join(dir, 'tls.key'), 'utf8') };
}

test('certs + broker commands end to end', async () => {
  await withLab(async (lab: Lab) => {
    await lab.startEtcd(1);
    const d = (x: string): string => join(lab.dir, x);
    assert.is(await quiet(() => certsCommand.run(['ca', 'create', '--out', d('ca')])), 0);
    assert.is((await stat(join(d('ca'), 'ca.key'))).mode & 0o777, 0o600);
    assert.is(await quiet(() => certsCommand.run(['issue', '--ca', d('ca'), '--server', '--san', '127.0.0.1,localhost', '--out', d('broker')])), 0);
    assert.is(await quiet(() => certsCommand.run(['issue', '--ca', d('ca'), '--cluster', 'c1', '--out', d('c1')])), 0);
    assert.is((await stat(join(d('c1'), 'tls.key'))).mode & 0o777, 0o600);
    const port = await freePort();
    const metrics = await freePort();
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e',
      `const { brokerCommand } = await import(${JSON.stringify(new URL('../cli/broker.ts', import.meta.url).href)}); process.exitCode = await brokerCommand.run(process.argv.slice(1));`,
      '--', '--etcd', lab.etcdHosts.join(','), '--listen', `127.0.0.1:${port}`, '--tls-dir', d('broker'), '--metrics', `127.0.0.1:${metrics}`,
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
    let logs = '';
    child.stderr.on('data', (b: Buffer) => (logs += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await eventually('the broker to serve', () => (/broker serving/.test(logs) ? true : child.exitCode !== null ? Promise.reject(new Error(`broker exited ${child.exitCode}: ${logs}`)) : undefined), 20_000);
      const client = lab.client(port, await tls(d('c1')));
      const r = await client.registerCluster({ cluster_id: 'c1', pod_cidrs: ['10.1.0.0/16'], service_cidrs: ['10.101.0.0/16'] });
      assert.is(r.cluster.cluster_id, 'c1');
      const body = await eventually('metrics', async () => {
        const res = await fetch(`http://127.0.0.1:${metrics}/metrics`);
        const text = await res.text();
        return /isthmus_broker_requests_total\{method="RegisterCluster",code="OK"\} 1/.test(text) ? text : undefined;
      });
      assert.match(body, /isthmus_broker_records 1/);
      assert.is((await fetch(`http://127.0.0.1:${metrics}/healthz`)).status, 200);
      assert.is((await fetch(`http://127.0.0.1:${metrics}/readyz`)).status, 200);
      assert.match(logs, /"msg":"broker serving"/);
      assert.not.match(logs, /PRIVATE KEY/, 'no key material in the logs');
      // with etcd gone the broker is alive but not ready
      await lab.killMember(lab.members[0] as EtcdMember);
      assert.is((await fetch(`http://127.0.0.1:${metrics}/readyz`)).status, 503);
      assert.is((await fetch(`http://127.0.0.1:${metrics}/healthz`)).status, 200);
    } finally {
      child.kill('SIGTERM');
    }
    assert.is(await exited, 0, `broker exits cleanly on SIGTERM; logs:\n${logs}`);
  });
});

test('--global-addressing uses the default pool 242.0.0.0/8, a /16 per cluster', async () => {
  await withLab(async (lab: Lab) => {
    await lab.startEtcd(1);
    await lab.makePki(['c1', 'c2']);
    const port = await freePort();
    const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e',
      `const { brokerCommand } = await import(${JSON.stringify(new URL('../cli/broker.ts', import.meta.url).href)}); process.exitCode = await brokerCommand.run(process.argv.slice(1));`,
      '--', '--etcd', lab.etcdHosts.join(','), '--listen', `127.0.0.1:${port}`, '--tls-dir', join(lab.pki, 'broker'), '--global-addressing',
    ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ISTHMUS_LOG_LEVEL: 'info' } });
    let logs = '';
    child.stderr.on('data', (b: Buffer) => (logs += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await eventually('the broker to serve', () => (/broker serving/.test(logs) ? true : child.exitCode !== null ? Promise.reject(new Error(logs)) : undefined), 20_000);
      const got: string[] = [];
      for (const id of ['c1', 'c2']) {
        const client = lab.client(port, await lab.tls(id));
        got.push((await client.registerCluster({ cluster_id: id, pod_cidrs: ['10.0.0.0/16'], service_cidrs: ['10.96.0.0/12'] })).cluster.global_cidr);
      }
      assert.equal(got, ['242.0.0.0/16', '242.1.0.0/16']);
    } finally {
      child.kill('SIGTERM');
    }
    assert.is(await exited, 0);
  });
});

test('bad options are refused with what to do', async () => {
  const fails = async (argv: string[], re: RegExp): Promise<void> => {
    try {
      await brokerCommand.run(argv);
      assert.unreachable('accepted bad options');
    } catch (err) {
      assert.instance(err, IsthmusError);
      assert.ok([ErrorCodes.INVALID_CONFIG, ErrorCodes.INVALID_ARGUMENT].includes((err as IsthmusError).code as never));
      assert.match((err as Error).message, re);
    }
  };
  await fails(['--etcd', 'localhost:2379', '--tls-dir', '/x'], /is not an etcd client URL such as http:\/\/127\.0\.0\.1:2379/);
  await fails(['--etcd', 'http://127.0.0.1:2379', '--tls-dir', '/x', '--global-cidr-pool', '242.0.0.0/33'], /globalCidrPool: .*invalid prefix length/);
  await fails(['--etcd', 'http://127.0.0.1:2379'], /tlsDir: is required/);
  await fails(['--tls-dir', '/x'], /--etcd is required/);
  await fails(['--etcd', 'http://127.0.0.1:2379', '--tls-dir', '/x', '--listn', 'a'], /listn: unknown option/);
  const certsFail = async (argv: string[], re: RegExp): Promise<void> => {
    try {
      await quiet(() => certsCommand.run(argv));
      assert.unreachable('accepted bad options');
    } catch (err) {
      assert.instance(err, IsthmusError);
      assert.match((err as Error).message, re);
    }
  };
  await certsFail(['issue', '--ca', '/nonexistent', '--cluster', 'c1', '--out', '/tmp/x'], /isthmus certs ca create/);
  await certsFail(['issue', '--ca', '/x', '--admin', '--cluster', 'c1', '--out', '/tmp/x'], /exactly one of/);
  await certsFail(['frobnicate'], /unknown certs command "frobnicate"/);
});

test('certs renew, ca rotate, show, wireguard and psk', async () => {
  await withLab(async (lab: Lab) => {
    const d = (x: string): string => join(lab.dir, x);
    const out: string[] = [];
    const capture = async (argv: string[]): Promise<number> => {
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string) => {
        out.push(String(chunk));
        return true;
      }) as typeof process.stdout.write;
      try {
        return await certsCommand.run(argv);
      } finally {
        process.stdout.write = write;
      }
    };
    assert.is(await capture(['ca', 'create', '--out', d('ca'), '--days', '30']), 0);
    assert.is(await capture(['issue', '--ca', d('ca'), '--gateway', 'gw1', '--cluster', 'c1', '--out', d('gw'), '--days', '9']), 0);
    const first = await readFile(join(d('gw'), 'tls.crt'), 'utf8');
    assert.is(await capture(['renew', '--ca', d('ca'), '--dir', d('gw')]), 0);
    assert.match(out.at(-1) ?? '', /not due until/);
    assert.is(await readFile(join(d('gw'), 'tls.crt'), 'utf8'), first, 'a certificate that is not due is left alone');
    assert.is(await capture(['ca', 'rotate', '--ca', d('ca')]), 0);
    assert.is(await capture(['renew', '--ca', d('ca'), '--dir', d('gw')]), 0);
    assert.match(out.at(-1) ?? '', /renewed .* \(issued by a previous CA\)/);
    assert.is.not(await readFile(join(d('gw'), 'tls.crt'), 'utf8'), first);
    assert.is(await capture(['show', join(d('gw'), 'tls.crt'), '--ca', d('ca')]), 0);
    const shown = out.slice(-2).join('');
    assert.match(shown, /"commonName": "gw1\.c1"/);
    assert.match(shown, /chain: valid/);
    assert.is(await capture(['wireguard', '--out', d('wg')]), 0);
    assert.is((await stat(join(d('wg'), 'private.key'))).mode & 0o777, 0o600);
    const pub = (await readFile(join(d('wg'), 'public.key'), 'utf8')).trim();
    assert.match(out.at(-1) ?? '', new RegExp(pub.replace(/[+/]/g, '.')));
    assert.not.match(out.join(''), new RegExp((await readFile(join(d('wg'), 'private.key'), 'utf8')).trim().replace(/[+/=]/g, '.')), 'the private key is not printed');
    assert.is(await capture(['psk', '--out', d('psk')]), 0);
    assert.is((await stat(d('psk'))).mode & 0o777, 0o600);
    assert.is(Buffer.from((await readFile(d('psk'), 'utf8')).trim(), 'base64').length, 48);
  });
});

test.run();
