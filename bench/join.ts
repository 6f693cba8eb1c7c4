// Benchmark (needs root, binaries cached by ./setup): the user's path on the sandbox —
// `isthmus broker deploy` in c1, then `isthmus join --wait` of c1..cN-1, and the one the
// issue times: `join --wait` of a further cluster into the running clusterset, from the
// command's start to every cable of it connected; then `verify` from the first cluster to the
// last. Targets (issue 13): ≤ 30 s for the 4th cluster, `verify` ≤ 60 s.
//
// usage: node bench/join.ts [--clusters 4]
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { isthmus, type Run } from '../test/lib/cli.ts';

const i = process.argv.indexOf('--clusters');
const clusters = i > 0 ? Number(process.argv[i + 1]) : 4;
const dir = mkdtempSync('/tmp/isthmus-bench-join-');
const env = { ISTHMUS_SANDBOX_DIR: join(dir, 'sandbox') };
const kubeconfig = join(dir, 'sandbox', 'kubeconfig');

async function timed(what: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  const r: Run = await isthmus([...args, '--kubeconfig', kubeconfig], env);
  const s = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stdout}\n${r.stderr}`);
  console.log(`${what}: ${s.toFixed(1)} s`);
  return s;
}

console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`);
try {
  const up = await isthmus(['sandbox', 'up', '--clusters', String(clusters), '--port-base', '28600'], env);
  if (up.code !== 0) throw new Error(`sandbox up failed: ${up.stderr}`);
  await timed('broker deploy (c1, NodePort, emptyDir etcd)', ['broker', 'deploy', '--context', 'c1', '--service-type', 'NodePort',
    '--node-selector', 'isthmus.dev/gateway-capable=true', '--etcd-storage', 'emptyDir', '--out', join(dir, 'c1.json')]);
  const joins: number[] = [];
  for (let n = 1; n <= clusters; n++) {
    if (n > 1) await timed(`broker token for c${n}`, ['broker', 'token', '--context', 'c1', '--out', join(dir, `c${n}.json`)]);
    joins.push(await timed(`join --wait c${n} (${n - 1} other members)`, ['join', join(dir, `c${n}.json`), '--context', `c${n}`, '--cluster-id', `c${n}`, '--wait']));
  }
  const last = joins[joins.length - 1] ?? 0;
  const verify = await timed(`verify --context c1 --tocontext c${clusters}`, ['verify', '--context', 'c1', '--tocontext', `c${clusters}`]);
  console.log(`\njoin --wait of cluster ${clusters} into a running clusterset: ${last.toFixed(1)} s (target ≤ 30 s: ${last <= 30 ? 'met' : 'NOT met'})`);
  console.log(`verify c1 → c${clusters}: ${verify.toFixed(1)} s (target ≤ 60 s: ${verify <= 60 ? 'met' : 'NOT met'})`);
} finally {
  await isthmus(['sandbox', 'down'], env);
  rmSync(dir, { recursive: true, force: true });
}
