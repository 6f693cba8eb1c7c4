import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { ErrorCodes, IsthmusError, missingDependency } from '../core/index.ts';

/**
 * Sandbox processes are detached (own session and process group) so they outlive
 * the `isthmus sandbox up` that started them, with stdout and stderr in a log file.
 * Every command line contains the sandbox directory, which is how `down` recognises
 * its own processes (and never kills a recycled pid that is not ours).
 */
export interface Spawned {
  readonly pid: number;
}

export function spawnDetached(command: string, args: readonly string[], logFile: string, env?: Record<string, string>): Spawned {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: env === undefined ? process.env : { ...process.env, ...env },
    });
    if (child.pid === undefined) throw missingDependency(command);
    child.on('error', () => {});
    child.unref();
    return { pid: child.pid };
  } finally {
    closeSync(fd);
  }
}

/** The command line of a live process, or undefined when it is gone (or a zombie). */
export function cmdlineOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and its command line mentions `marker`. */
export function isOurs(pid: number, marker: string): boolean {
  return cmdlineOf(pid)?.includes(marker) ?? false;
}

/** Every live process whose command line mentions `marker` (the orphan sweep). */
export async function findByMarker(marker: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if (isOurs(pid, marker)) pids.push(pid);
  }
  return pids;
}

/** Signals the process group of `pid` (the process alone when it leads none); no error when gone. */
export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Stops processes that mention `marker`: SIGTERM to each process group, then
 * SIGKILL after `graceMs` for any still alive. Resolves when all are gone.
 */
export async function stopProcesses(pids: readonly number[], marker: string, graceMs = 5000): Promise<void> {
  const ours = pids.filter((p) => isOurs(p, marker));
  for (const p of ours) signalGroup(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let alive = ours;
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    alive = alive.filter((p) => isOurs(p, marker));
  }
  for (const p of alive) signalGroup(p, 'SIGKILL');
  const killDeadline = Date.now() + 5000;
  while (alive.length > 0 && Date.now() < killDeadline) {
    await new Promise((r) => setTimeout(r, 50));
    alive = alive.filter((p) => isOurs(p, marker));
  }
  if (alive.length > 0) {
    throw new IsthmusError(ErrorCodes.INTERNAL, `processes ${alive.join(', ')} survived SIGKILL; check them with ps`);
  }
}
