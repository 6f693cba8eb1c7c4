// e2e, needs root: pod specs the sandbox cannot honour get an Event that says why
// and stay Pending; an image the sandbox has no process for runs as documented.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, isthmus, kubectl, requireRootForTest } from './lib/cli.ts';

requireRootForTest('test/sandbox-pods-bad-input.test.ts');
const dir = mkdtempSync('/tmp/isthmus-pods-');
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const kc = join(sbx, 'kubeconfig');

async function events(name: string): Promise<string[]> {
  const out = await kubectl(kc, 'c1', ['get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
  return out.split('\n').filter(Boolean);
}

async function phase(name: string): Promise<string> {
  return (await kubectl(kc, 'c1', ['get', 'pod', name, '-o', 'jsonpath={.status.phase}'])).trim();
}

function pod(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec });
}

test.after(async () => {
  await isthmus(['sandbox', 'down'], env);
  execFileSync('rm', ['-rf', dir]);
});

test('up with one node and a /29 pod CIDR (5 addresses)', async () => {
  const r = await isthmus(['sandbox', 'up', '--clusters', '1', '--nodes', '1', '--node-cidr-mask', '29', '--port-base', '26600'], env);
  assert.is(r.code, 0, r.stderr);
  const cidr = await kubectl(kc, 'c1', ['get', 'node', 'c1-n1', '-o', 'jsonpath={.spec.podCIDR}']);
  assert.match(cidr, /\/29$/);
});

test('an exhausted pod CIDR leaves the extra pods Pending with an Event naming it', async () => {
  // CoreDNS holds 2 of the 5 addresses; 4 more pods leave one without an address
  for (let i = 1; i <= 4; i++) await kubectl(kc, 'c1', ['apply', '-f', '-'], pod(`p${i}`, { containers: [{ name: 'e', image: 'isthmus/echo' }] }));
  const pending = await eventually('one pod left Pending with an event', async () => {
    const phases = await Promise.all([1, 2, 3, 4].map(async (i) => [`p${i}`, await phase(`p${i}`)] as const));
    const waiting = phases.filter(([, p]) => p === 'Pending');
    if (phases.filter(([, p]) => p === 'Running').length !== 3 || waiting.length !== 1) return undefined;
    const name = waiting[0]?.[0] ?? '';
    const ev = await events(name);
    return ev.some((e) => e.includes('exhausted')) ? { name, ev } : undefined;
  }, 60_000);
  assert.ok(pending.ev.some((e) => /pod CIDR 10\.1\.0\.0\/29 of node c1-n1 is exhausted/.test(e)), pending.ev.join('\n'));
  // freeing an address lets it start
  const running = (['p1', 'p2', 'p3', 'p4'].filter((p) => p !== pending.name))[0] ?? '';
  await kubectl(kc, 'c1', ['delete', 'pod', running, '--wait=true']);
  await eventually('the pending pod to start once an address is free', async () => ((await phase(pending.name)) === 'Running' ? true : undefined), 60_000);
});

test('a volume type the sandbox lacks: Pending with an Event that names it', async () => {
  await kubectl(kc, 'c1', ['delete', 'pod', 'p1', 'p2', 'p3', 'p4', '--ignore-not-found', '--wait=true']);
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('claims', {
    containers: [{ name: 'e', image: 'isthmus/echo', volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
    volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'nope' } }],
  }));
  const ev = await eventually('FailedMount event', async () => {
    const e = await events('claims');
    return e.some((x) => x.startsWith('FailedMount')) ? e : undefined;
  }, 30_000);
  assert.ok(ev.some((e) => e.includes('volume data (persistentVolumeClaim) is a type the isthmus sandbox cannot provide')), ev.join('\n'));
  assert.is(await phase('claims'), 'Pending');
});

test('a nodeSelector no node matches: FailedScheduling', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('picky', { nodeSelector: { disk: 'ssd' }, containers: [{ name: 'e', image: 'isthmus/echo' }] }));
  const ev = await eventually('FailedScheduling event', async () => {
    const e = await events('picky');
    return e.some((x) => x.startsWith('FailedScheduling')) ? e : undefined;
  }, 30_000);
  assert.ok(ev.some((e) => e.includes('matches nodeSelector {"disk":"ssd"}')), ev.join('\n'));
});

test('an image the sandbox runs no process for is Running and Ready, with an Event that says so', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('mystery', { containers: [{ name: 'm', image: 'example.com/mystery:1.0' }] }));
  await eventually('mystery Ready', async () => ((await kubectl(kc, 'c1', ['get', 'pod', 'mystery', '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'])).trim() === 'True' ? true : undefined), 30_000);
  const ip = (await kubectl(kc, 'c1', ['get', 'pod', 'mystery', '-o', 'jsonpath={.status.podIP}'])).trim();
  assert.match(ip, /^10\.1\.0\.\d+$/);
  const ev = await eventually('NoProcess event', async () => {
    const e = await events('mystery');
    return e.some((x) => x.startsWith('NoProcess')) ? e : undefined;
  }, 30_000);
  assert.ok(ev.some((e) => e.includes('example.com/mystery:1.0') && e.includes('no process')), ev.join('\n'));
});

test.run();
