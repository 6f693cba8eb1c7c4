import { writeFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { Exec, type V1Status } from '@kubernetes/client-node';
import { int, messageOf, oneOf, optionalStr, str, validateConfig } from '../core/index.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { Kube, waitFor, type Obj } from './kube-apply.ts';
import { formatRows } from './show.ts';

/**
 * `isthmus verify --context A --tocontext B`: connectivity and service discovery between
 * two joined clusters, with pods of its own in a namespace of its own (deleted afterwards):
 * agnhost netexec servers behind a Service in B, exported; an agnhost client in A. From
 * the client: a server pod by IP, the Service by its ClusterIP, and by its clusterset name
 * `<svc>.<ns>.svc.clusterset.local`. Each is a test case of the JUnit report (`--junit`);
 * the exit code is 1 when any fails. Progress goes to stdout as it happens; with `-o json|yaml`
 * it goes to stderr and stdout holds only the cases as data.
 */
const USAGE = 'isthmus verify --context A --tocontext B [--kubeconfig F] [--junit FILE] [--timeout S] [-o table|json|yaml]';
export const VERIFY_NS = 'isthmus-verify';
const AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost:2.53';

export interface Case { readonly name: string; readonly ms: number; readonly failure?: string }

/** The JUnit XML of one suite. Pure. */
export function junit(suite: string, cases: readonly Case[]): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const failures = cases.filter((c) => c.failure !== undefined).length;
  const total = cases.reduce((s, c) => s + c.ms, 0) / 1000;
  const body = cases.map((c) => `  <testcase classname="${esc(suite)}" name="${esc(c.name)}" time="${(c.ms / 1000).toFixed(3)}">${c.failure === undefined ? '' : `<failure message="${esc(c.failure)}"/>`}</testcase>`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="${esc(suite)}" tests="${cases.length}" failures="${failures}" time="${total.toFixed(3)}">\n${body.join('\n')}\n</testsuite>\n`;
}

/** The cases as rows for `-o json|yaml`. Pure. */
export function caseRows(cases: readonly Case[]): { columns: string[]; rows: string[][] } {
  return { columns: ['CASE', 'RESULT', 'SECONDS', 'DETAIL'], rows: cases.map((c) => [c.name, c.failure === undefined ? 'passed' : 'failed', (c.ms / 1000).toFixed(3), c.failure ?? '']) };
}

function pod(name: string, labels: Record<string, string>, args: string[]): Obj {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: VERIFY_NS, labels }, spec: { containers: [{ name: 'agnhost', image: AGNHOST, args, ports: [{ containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }] } };
}

async function exec(kube: Kube, podName: string, command: string[]): Promise<string> {
  const out = new PassThrough();
  const err = new PassThrough();
  let text = '';
  let errText = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  err.on('data', (d: Buffer) => (errText += d.toString()));
  const status = await new Promise<V1Status>((resolve, reject) => {
    new Exec(kube.kc).exec(VERIFY_NS, podName, 'agnhost', command, out, err, null, false, resolve).catch(reject);
  });
  await new Promise((r) => setTimeout(r, 200));
  if (status.status !== 'Success') throw new Error(`${command.join(' ')}: ${errText.trim() || status.message || 'failed'}`);
  return text;
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help']));
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const cfg = validateConfig({
    kubeconfig: optionalStr('kubeconfig'), context: str('the client cluster'), tocontext: str('the server cluster'), junit: optionalStr('JUnit report file'),
    timeout: int('seconds each step waits (default 60)', 60, 5, 3600), output: oneOf('-o: table (progress), json or yaml (the cases as data)', ['table', 'json', 'yaml'] as const, 'table'),
  }, optionRecord(args), 'verify options');
  const format = cfg.output;
  const a = Kube.load(cfg.kubeconfig, cfg.context);
  const b = Kube.load(cfg.kubeconfig, cfg.tocontext);
  const timeoutMs = cfg.timeout * 1000;
  const say = (s: string): void => void (format === 'table' ? process.stdout : process.stderr).write(`${s}\n`);
  const cases: Case[] = [];
  const step = async (name: string, fn: () => Promise<string>): Promise<void> => {
    const t0 = Date.now();
    try {
      const detail = await fn();
      cases.push({ name, ms: Date.now() - t0 });
      say(`✓ ${name}: ${detail}`);
    } catch (err) {
      cases.push({ name, ms: Date.now() - t0, failure: messageOf(err) });
      say(`✗ ${name}: ${messageOf(err)}`);
    }
  };
  const ns: Obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: VERIFY_NS, labels: { 'app.kubernetes.io/part-of': 'isthmus' } } };
  try {
    for (const k of [a, b]) await k.apply(ns);
    await b.apply(pod('server', { app: 'verify' }, ['netexec', '--http-port=8080']));
    await b.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'verify', namespace: VERIFY_NS }, spec: { selector: { app: 'verify' }, ports: [{ port: 8080, targetPort: 8080 }] } });
    await b.apply({ apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceExport', metadata: { name: 'verify', namespace: VERIFY_NS } });
    await a.apply(pod('client', { app: 'verify-client' }, ['netexec', '--http-port=8080']));
    const ready = async (k: Kube, name: string): Promise<string> => waitFor(`pod ${name} in ${k.context} ready`, timeoutMs, async () => {
      const p = await k.core.readNamespacedPod({ name, namespace: VERIFY_NS });
      return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true ? (p.status.podIP ?? '') : undefined;
    }, 500);
    const serverIp = await ready(b, 'server');
    await ready(a, 'client');
    const clusterIp = (await b.core.readNamespacedService({ name: 'verify', namespace: VERIFY_NS })).spec?.clusterIP ?? '';
    const curl = (url: string): Promise<string> => waitFor(`an answer from ${url}`, timeoutMs, () => exec(a, 'client', ['curl', '-sS', '--max-time', '3', url]).then((o) => (o.trim() === '' ? undefined : o.trim())), 1000);
    await step(`${a.context} pod → ${b.context} pod ${serverIp}`, async () => `answered by ${await curl(`http://${serverIp}:8080/hostname`)}`);
    await step(`${a.context} pod → ${b.context} Service ClusterIP ${clusterIp}`, async () => `answered by ${await curl(`http://${clusterIp}:8080/hostname`)}`);
    await step(`${a.context} pod → verify.${VERIFY_NS}.svc.clusterset.local`, async () => `answered by ${await curl(`http://verify.${VERIFY_NS}.svc.clusterset.local:8080/hostname`)}`);
  } catch (err) {
    cases.push({ name: 'setup', ms: 0, failure: messageOf(err) });
    say(`✗ setup: ${messageOf(err)}`);
  } finally {
    for (const k of [a, b]) await k.remove('v1', 'Namespace', VERIFY_NS).catch(() => false);
  }
  if (cfg.junit !== undefined) await writeFile(cfg.junit, junit(`isthmus verify ${a.context} → ${b.context}`, cases));
  const failed = cases.filter((c) => c.failure !== undefined).length;
  say(`${cases.length - failed} passed, ${failed} failed${cfg.junit === undefined ? '' : ` (JUnit report: ${cfg.junit})`}`);
  if (format !== 'table') process.stdout.write(formatRows(caseRows(cases), format));
  return failed === 0 ? 0 : 1;
}

export const verifyCommand: Command = {
  name: 'verify',
  run,
};
