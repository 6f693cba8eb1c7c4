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

/** Resident memory of a process in MB by kind (RssAnon: heaps and stacks; RssFile: mapped files such as the node binary; RssShmem), zeros when it cannot be read. */
export function rssPartsMb(pid: number): { anon: number; file: number; shmem: number } {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const mb = (field: string): number => Math.round(Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0) / 1024);
    return { anon: mb('RssAnon'), file: mb('RssFile'), shmem: mb('RssShmem') };
  } catch {
    return { anon: 0, file: 0, shmem: 0 };
  }
}

/** The `n` mappings of a process holding the most resident memory ("[anon]" for anonymous ones), MB each; empty when unreadable. */
export function rssTopMappings(pid: number, n: number): { mapping: string; mb: number }[] {
  try {
    const per = new Map<string, number>();
    let current = '';
    for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (head !== null) {
        current = head[1] === '' || head[1] === undefined ? '[anon]' : head[1];
        continue;
      }
      const rss = /^Rss:\s+(\d+) kB/.exec(line);
      if (rss !== null) per.set(current, (per.get(current) ?? 0) + Number(rss[1]));
    }
    return [...per].sort((a, b) => b[1] - a[1]).slice(0, n).map(([mapping, kb]) => ({ mapping, mb: Math.round(kb / 102.4) / 10 }));
  } catch {
    return [];
  }
}
