import { writeFile } from 'node:fs/promises';
import { bool, ErrorCodes, int, IsthmusError, messageOf, oneOf, optionalStr, str, validateConfig } from '../core/index.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';
import { failover, failoverReady } from './failover.ts';
import { Kube, waitFor } from './kube-apply.ts';
import { AGNHOST, execIn, namespaceObject, podObject, podReady } from './pods.ts';
import { formatRows } from './show.ts';

/**
 * `isthmus verify --context A --tocontext B`: connectivity and service discovery between
 * two joined clusters, with pods of its own in a namespace of its own (deleted afterwards):
 * agnhost netexec servers behind a Service in B, exported; an agnhost client in A. From
 * the client: a server pod by IP, the Service by its ClusterIP, and by its clusterset name
 * `<svc>.<ns>.svc.clusterset.local`. `--disruptive` then fails over the gateway of B and
 * then of A (failover.ts) and measures the outage each time; it is refused before anything
 * is made when a cluster has one gateway node. Each is a test case of the JUnit report
 * (`--junit`, the outages in each case's system-out); the exit code is 1 when any fails.
 * Progress goes to stdout as it happens; with `-o json|yaml` it goes to stderr and stdout
 * holds only the cases as data.
 */
const USAGE = 'isthmus verify --context A --tocontext B [--disruptive] [--kubeconfig F] [--junit FILE] [--timeout S] [-o table|json|yaml]';
export const VERIFY_NS = 'isthmus-verify';

export interface Case { readonly name: string; readonly ms: number; readonly failure?: string; readonly output?: string }

/** The JUnit XML of one suite. Pure. */
export function junit(suite: string, cases: readonly Case[]): string {
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  const failures = cases.filter((c) => c.failure !== undefined).length;
  const total = cases.reduce((s, c) => s + c.ms, 0) / 1000;
  const body = cases.map((c) => `  <testcase classname="${esc(suite)}" name="${esc(c.name)}" time="${(c.ms / 1000).toFixed(3)}">${c.failure === undefined ? '' : `<failure message="${esc(c.failure)}"/>`}`
    + `${c.output === undefined ? '' : `<system-out>${esc(c.output)}</system-out>`}</testcase>`);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="${esc(suite)}" tests="${cases.length}" failures="${failures}" time="${total.toFixed(3)}">\n${body.join('\n')}\n</testsuite>\n`;
}

/** The cases as rows for `-o json|yaml`. Pure. */
export function caseRows(cases: readonly Case[]): { columns: string[]; rows: string[][] } {
  return { columns: ['CASE', 'RESULT', 'SECONDS', 'DETAIL'], rows: cases.map((c) => [c.name, c.failure === undefined ? 'passed' : 'failed', (c.ms / 1000).toFixed(3), c.failure ?? c.output ?? '']) };
}

/** What the client's cluster has made of the export (and the server's of its ServiceExport), to say where a clusterset name stops. */
async function importState(a: Kube, b: Kube): Promise<string> {
  const si = await a.read<{ spec?: { ips?: string[] } }>('multicluster.x-k8s.io/v1beta1', 'ServiceImport', 'verify', VERIFY_NS);
  if (si === undefined) {
    const se = await b.read<{ status?: { conditions?: { type?: string; status?: string; reason?: string; message?: string }[] } }>('multicluster.x-k8s.io/v1beta1', 'ServiceExport', 'verify', VERIFY_NS);
    const ready = se?.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'True') return `${a.context} has no ServiceImport ${VERIFY_NS}/verify although ${b.context}'s ServiceExport is Ready (the broker holds it): see isthmus show exports and the logs of isthmus-mcs in ${a.context}`;
    const said = ready === undefined ? 'has no Ready condition yet' : `is Ready=${ready.status ?? '?'} (${ready.reason ?? ''}: ${ready.message ?? ''})`;
    return `${a.context} has no ServiceImport ${VERIFY_NS}/verify: ${b.context}'s ServiceExport ${said}; see the logs of isthmus-mcs in ${b.context}`;
  }
  const ips = si.spec?.ips ?? [];
  if (ips.length === 0) return `${a.context}'s ServiceImport ${VERIFY_NS}/verify has no clusterset IP yet (see the logs of isthmus-mcs in ${a.context})`;
  return `${a.context}'s ServiceImport ${VERIFY_NS}/verify has the clusterset IP ${ips.join(', ')}: the name did not resolve to it through CoreDNS and isthmus-dns, or the connection to it failed (the last error above says which; isthmus diagnose checks the CoreDNS stanza)`;
}

async function run(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help', 'disruptive']));
  if (args.options.has('help')) {
    process.stdout.write(`usage: ${USAGE}\n`);
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const cfg = validateConfig({
    kubeconfig: optionalStr('kubeconfig'), context: str('the client cluster'), tocontext: str('the server cluster'), junit: optionalStr('JUnit report file'),
    timeout: int('seconds each step waits (default 60)', 60, 5, 3600), output: oneOf('-o: table (progress), json or yaml (the cases as data)', ['table', 'json', 'yaml'] as const, 'table'),
    disruptive: bool('also fail over the gateways of both clusters and measure the outage (default false)', false),
  }, optionRecord(args), 'verify options');
  const format = cfg.output;
  const a = Kube.load(cfg.kubeconfig, cfg.context);
  const b = Kube.load(cfg.kubeconfig, cfg.tocontext);
  if (cfg.disruptive) for (const k of [b, a]) await failoverReady(k);
  const timeoutMs = cfg.timeout * 1000;
  const say = (s: string): void => void (format === 'table' ? process.stdout : process.stderr).write(`${s}\n`);
  const cases: Case[] = [];
  const step = async (name: string, fn: () => Promise<string>): Promise<void> => {
    const t0 = Date.now();
    try {
      const detail = await fn();
      cases.push({ name, ms: Date.now() - t0, output: detail });
      say(`✓ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${detail}`);
    } catch (err) {
      cases.push({ name, ms: Date.now() - t0, failure: messageOf(err) });
      say(`✗ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${messageOf(err)}`);
    }
  };
  const pod = (name: string, labels: Record<string, string>) => podObject({ name, namespace: VERIFY_NS, image: AGNHOST, labels, args: ['netexec', '--http-port=8080'], port: 8080 });
  try {
    for (const k of [a, b]) {
      // a namespace of an earlier run may still be terminating: nothing can be made in it
      await waitFor(`namespace ${VERIFY_NS} of an earlier run gone from ${k.context}`, timeoutMs, async () => ((await k.read('v1', 'Namespace', VERIFY_NS))?.metadata?.deletionTimestamp === undefined ? true : undefined), 1000);
      await k.apply(namespaceObject(VERIFY_NS));
    }
    await b.apply(pod('server', { app: 'verify' }));
    await b.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'verify', namespace: VERIFY_NS }, spec: { selector: { app: 'verify' }, ports: [{ port: 8080, targetPort: 8080 }] } });
    await b.apply({ apiVersion: 'multicluster.x-k8s.io/v1beta1', kind: 'ServiceExport', metadata: { name: 'verify', namespace: VERIFY_NS } });
    await a.apply(pod('client', { app: 'verify-client' }));
    const serverIp = (await podReady(b, VERIFY_NS, 'server', timeoutMs)).ip;
    await podReady(a, VERIFY_NS, 'client', timeoutMs);
    const clusterIp = (await b.core.readNamespacedService({ name: 'verify', namespace: VERIFY_NS })).spec?.clusterIP ?? '';
    const curl = (url: string): Promise<string> => waitFor(`an answer from ${url}`, timeoutMs, () => execIn(a, VERIFY_NS, 'client', ['curl', '-sS', '--max-time', '3', url]).then((o) => (o.trim() === '' ? undefined : o.trim())), 1000);
    const urls = { [`pod ${serverIp}`]: `http://${serverIp}:8080/hostname`, [`verify.${VERIFY_NS}.svc.clusterset.local`]: `http://verify.${VERIFY_NS}.svc.clusterset.local:8080/hostname` };
    await step(`${a.context} pod → ${b.context} pod ${serverIp}`, async () => `answered by ${await curl(`http://${serverIp}:8080/hostname`)}`);
    await step(`${a.context} pod → ${b.context} Service ClusterIP ${clusterIp}`, async () => `answered by ${await curl(`http://${clusterIp}:8080/hostname`)}`);
    await step(`${a.context} pod → verify.${VERIFY_NS}.svc.clusterset.local`, async () => {
      try {
        return `answered by ${await curl(`http://verify.${VERIFY_NS}.svc.clusterset.local:8080/hostname`)}`;
      } catch (err) {
        throw new IsthmusError(ErrorCodes.TIMEOUT, `${messageOf(err)}; ${await importState(a, b).catch((e: unknown) => messageOf(e))}`);
      }
    });
    if (cfg.disruptive) {
      for (const target of [b, a]) {
        await step(`gateway failover in ${target.context}`, async () => {
          const r = await failover(target, { kube: a, namespace: VERIFY_NS, pod: 'client' }, urls, timeoutMs);
          const outages = Object.entries(r.outages).map(([k, ms]) => `${k} ${Number.isNaN(ms) ? '?' : (ms / 1000).toFixed(1)} s`).join(', ');
          return `active ${r.from} → ${r.to} in ${(r.takeoverMs / 1000).toFixed(1)} s after ${r.from} was drained (cordoned, its gateway pod deleted); outage: ${outages}`;
        });
      }
    }
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
