import { spawn } from 'node:child_process';
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
export function isthmus(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return run(process.execPath, ['--no-warnings', join(projectRoot(), 'cli', 'main.ts'), ...args], { env });
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
