import { readFileSync } from 'node:fs';

/** Resident memory of a process in MB (VmRSS), 0 when it cannot be read. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Math.round(Number(m?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}
