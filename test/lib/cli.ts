import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { kubeBinDir, projectRoot } from '../../sandbox/index.ts';

/** Helpers for e2e tests: run the isthmus CLI from this checkout's sources, and kubectl. */
export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(command: string, args: readonly string[], opts: { env?: Record<string, string>; input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // stdin is closed from the start unless there is input, so a quick exit cannot EPIPE
    const child = spawn(command, args, {
      env: { ...process.env, ...opts.env },
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 300_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
    if (child.stdin !== null) {
      child.stdin.on('error', () => {}); // the child may exit before reading it all; its exit code says what happened
      child.stdin.end(opts.input);
    }
  });
}

/** `isthmus …` from source (cli/main.ts), so tests need no build. */
export function isthmus(args: readonly string[], env: Record<string, string> = {}, timeoutMs?: number): Promise<Run> {
  return run(process.execPath, ['--no-warnings', join(projectRoot(), 'cli', 'main.ts'), ...args], { env, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

export function kubectlPath(): string {
  return join(kubeBinDir(), 'kubectl');
}

/** kubectl against a sandbox kubeconfig; throws with stderr when it fails. */
export async function kubectl(kubeconfig: string, context: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(kubectlPath(), ['--kubeconfig', kubeconfig, '--context', context, ...args], input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl --context ${context} ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Polls `fn` until it returns a value that is not undefined, or throws after `timeoutMs`. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** Fails the test early with a clear message when not root. */
export function requireRootForTest(file: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${file} needs root (it creates bridges and runs a real control plane): run the suite as root, as .ci/run does`);
  }
}

/** `r` when its command succeeded, else an error naming `what` with its output. */
export function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/**
 * One e2e file's sandbox in a folder of its own (`prefix` + random): its paths, kubectl and
 * the CLI bound to its kubeconfig, and `down` (sandbox down, folder removed) for test.after.
 */
export function sandboxSession(prefix: string): {
  readonly dir: string; readonly env: Record<string, string>; readonly kubeconfig: string;
  f(name: string): string;
  k(context: string, args: readonly string[], input?: string): Promise<string>;
  /** The CLI with this sandbox's kubeconfig; killed after `timeoutMs` (default 300 s). */
  cli(args: readonly string[], timeoutMs?: number): Promise<Run>;
  /** Runs `fn`; when it throws, prints `diag:` lines about Isthmus in `contexts` first. */
  diagnosed<T>(contexts: readonly string[], fn: () => Promise<T>): Promise<T>;
  down(): Promise<void>;
} {
  const dir = mkdtempSync(prefix);
  const env = { ISTHMUS_SANDBOX_DIR: join(dir, 'sandbox') };
  const kubeconfig = join(dir, 'sandbox', 'kubeconfig');
  return {
    dir, env, kubeconfig,
    f: (name) => join(dir, name),
    k: (context, args, input) => kubectl(kubeconfig, context, args, input),
    cli: (args, timeoutMs) => isthmus([...args, '--kubeconfig', kubeconfig], env, timeoutMs),
    diagnosed: async (contexts, fn) => {
      try {
        return await fn();
      } catch (err) {
        for (const c of contexts) for (const line of await isthmusDiagnosis(kubeconfig, c)) process.stdout.write(`diag: ${c}: ${line}\n`);
        throw err;
      }
    },
    down: async () => {
      await isthmus(['sandbox', 'down'], env);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const COMPONENTS = ['isthmus-gateway', 'isthmus-route-agent', 'isthmus-mcs', 'isthmus-dns', 'isthmus-broker', 'isthmus-policy-controller', 'isthmus-policy-agent'];

/**
 * What a failed e2e test's reader needs first, for one cluster: the pods of isthmus-system that
 * are not ready or restarted, and the last warnings and errors each component logged (pino
 * level >= 40). scripts/test.sh repeats these `diag:` lines at the end of the run.
 */
export async function isthmusDiagnosis(kubeconfig: string, context: string, perComponent = 5): Promise<string[]> {
  const out: string[] = [];
  const k = (args: readonly string[]): Promise<Run> => run(kubectlPath(), ['--kubeconfig', kubeconfig, '--context', context, '-n', 'isthmus-system', ...args], { timeoutMs: 30_000 });
  const pods = await k(['get', 'pods', '-o', 'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} ready={.status.containerStatuses[*].ready} restarts={.status.containerStatuses[*].restartCount}{"\\n"}{end}']);
  for (const line of pods.stdout.split('\n')) if (line !== '' && (/ready=.*false/.test(line) || !/restarts=(0 ?)+$/.test(line) || !/ Running /.test(line))) out.push(`pod ${line}`);
  for (const name of COMPONENTS) {
    const logs = await k(['logs', '-l', `app.kubernetes.io/name=${name}`, '--tail=2000', '--prefix', '--max-log-requests=10']);
    const bad = logs.stdout.split('\n').filter((l) => /"level":(4|5|6)0/.test(l));
    for (const l of bad.slice(-perComponent)) out.push(`${name} ${l.replace(/"(pid|hostname)":[^,]*,/g, '')}`);
  }
  return out;
}
