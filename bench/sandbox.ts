// Benchmark (needs root, binaries cached by ./setup): `isthmus sandbox up` for 3 clusters,
// wall time from the command's start to every control plane ready, and the resident memory
// of one cluster's control plane (etcd + kube-apiserver + kube-controller-manager).
// Targets (issue "Foundation"): up ≤ 60 s; control plane RSS ≤ 600 MB.
//
// usage: node bench/sandbox.ts [--clusters 3] [--rounds 3] [--settle 20]
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { isthmus } from '../test/lib/cli.ts';
import type { SandboxState } from '../sandbox/index.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const clusters = arg('clusters', 3);
const rounds = arg('rounds', 3);
const settleS = arg('settle', 20);
const dir = mkdtempSync('/tmp/isthmus-bench-');
const env = { ISTHMUS_SANDBOX_DIR: join(dir, 'sandbox') };
const times: number[] = [];
let memory: { component: string; mb: number }[] = [];

console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}`);
try {
  for (let r = 1; r <= rounds; r++) {
    const t0 = performance.now();
    const up = await isthmus(['sandbox', 'up', '--clusters', String(clusters), '--port-base', '28400'], env);
    const s = (performance.now() - t0) / 1000;
    if (up.code !== 0) throw new Error(`sandbox up failed: ${up.stderr}`);
    times.push(s);
    console.log(`round ${r}: sandbox up --clusters ${clusters}: ${s.toFixed(1)} s`);
    if (r === rounds) {
      await new Promise((res) => setTimeout(res, settleS * 1000));
      const state = JSON.parse(readFileSync(join(dir, 'sandbox', 'state.json'), 'utf8')) as SandboxState;
      memory = state.processes.filter((p) => p.name.startsWith('c1/')).map((p) => ({ component: p.name, mb: rssKb(p.pid) / 1024 }));
    }
    const down = await isthmus(['sandbox', 'down'], env);
    if (down.code !== 0) throw new Error(`sandbox down failed: ${down.stderr}`);
  }
} finally {
  await isthmus(['sandbox', 'down'], env);
  rmSync(dir, { recursive: true, force: true });
}
const sorted = [...times].sort((a, b) => a - b);
console.log(`sandbox up (${clusters} clusters): median ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} s, min ${sorted[0]?.toFixed(1)} s, max ${sorted.at(-1)?.toFixed(1)} s over ${rounds} rounds (target ≤ 60 s)`);
for (const m of memory) console.log(`  RSS ${m.component}: ${m.mb.toFixed(0)} MB`);
const total = memory.reduce((a, m) => a + m.mb, 0);
console.log(`control plane RSS of one cluster after ${settleS} s idle: ${total.toFixed(0)} MB (target ≤ 600 MB)`);
