import { open, readFile, stat } from 'node:fs/promises';

/**
 * `kubectl logs` from the CRI-format files the shim writes: `--tail`, `--since`
 * (seconds or a time), `--timestamps`, `--limit-bytes`, `--previous` (the file of the
 * container's instance before its last restart) and `-f`. Selection is pure; `follow`
 * polls the file and stops when the caller says the container has exited and
 * everything it wrote has been sent.
 */
export interface LogOptions {
  readonly follow: boolean;
  readonly tailLines?: number;
  /** Only lines written at or after this time. */
  readonly since?: Date;
  readonly timestamps: boolean;
  readonly limitBytes?: number;
  readonly previous: boolean;
}

export interface LogLine {
  readonly time: string;
  readonly stream: 'stdout' | 'stderr';
  readonly full: boolean;
  readonly text: string;
}

/** One CRI line, or undefined for a line that is not one (never thrown away silently: it is returned as text). */
export function parseLine(line: string): LogLine {
  const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(line);
  if (m === null) return { time: '', stream: 'stdout', full: true, text: line };
  return { time: m[1] as string, stream: m[2] as 'stdout' | 'stderr', full: m[3] === 'F', text: m[4] as string };
}

/** Parses the query of GET /containerLogs/…; a malformed value is a message for a 400. */
export function logOptions(q: URLSearchParams, now: Date): LogOptions | string {
  const flag = (k: string): boolean => q.get(k) === 'true' || q.get(k) === '1';
  const num = (k: string): number | undefined | string => {
    const v = q.get(k);
    if (v === null || v === '') return undefined;
    const n = Number(v);
    return Number.isInteger(n) && n >= 0 ? n : `${k} must be a whole number ≥ 0 (got "${v}")`;
  };
  const tail = num('tailLines');
  const sinceSeconds = num('sinceSeconds');
  const limit = num('limitBytes');
  for (const v of [tail, sinceSeconds, limit]) if (typeof v === 'string') return v;
  let since: Date | undefined;
  if (typeof sinceSeconds === 'number') since = new Date(now.getTime() - sinceSeconds * 1000);
  const st = q.get('sinceTime');
  if (st !== null && st !== '') {
    since = new Date(st);
    if (Number.isNaN(since.getTime())) return `sinceTime must be an RFC 3339 time (got "${st}")`;
  }
  return {
    follow: flag('follow'),
    timestamps: flag('timestamps'),
    previous: flag('previous'),
    ...(typeof tail === 'number' ? { tailLines: tail } : {}),
    ...(since === undefined ? {} : { since }),
    ...(typeof limit === 'number' ? { limitBytes: limit } : {}),
  };
}

/** Formats one line for the client. */
export function render(l: LogLine, timestamps: boolean): string {
  return (timestamps && l.time !== '' ? `${l.time} ` : '') + l.text + (l.full ? '\n' : '');
}

/** The lines of `text` that `opts` selects (since, then the last tailLines). Pure. */
export function select(text: string, opts: Pick<LogOptions, 'since' | 'tailLines'>): LogLine[] {
  let lines = text.split('\n').filter((l) => l !== '').map(parseLine);
  if (opts.since !== undefined) {
    const t = opts.since.getTime();
    lines = lines.filter((l) => l.time === '' || new Date(l.time).getTime() >= t);
  }
  if (opts.tailLines !== undefined) {
    // count whole lines: a partial piece belongs to the full line after it
    let whole = 0;
    let i = lines.length;
    while (i > 0 && whole < opts.tailLines + 1) {
      if (lines[i - 1]?.full === true) whole++;
      if (whole > opts.tailLines) break;
      i--;
    }
    lines = lines.slice(i);
  }
  return lines;
}

async function readIfThere(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

export interface FollowTarget {
  /** The current log file. */
  readonly path: string;
  /** True while the container may still write. */
  readonly alive: () => boolean;
}

/**
 * Writes the selected lines, then (with follow) what is appended, to `write`, until
 * the container is gone and drained, `signal` aborts, or limitBytes is reached.
 */
export async function streamLogs(
  target: FollowTarget,
  opts: LogOptions,
  write: (s: string) => boolean | Promise<boolean>,
  signal: AbortSignal,
  pollMs = 50,
): Promise<void> {
  let budget = opts.limitBytes ?? Number.POSITIVE_INFINITY;
  const emit = async (lines: readonly LogLine[]): Promise<boolean> => {
    for (const l of lines) {
      let s = render(l, opts.timestamps);
      if (Buffer.byteLength(s) > budget) s = Buffer.from(s).subarray(0, budget).toString();
      budget -= Buffer.byteLength(s);
      if (s.length > 0 && !(await write(s))) return false;
      if (budget <= 0) return false;
    }
    return true;
  };
  const first = (await readIfThere(`${target.path}.1`)) + (await readIfThere(target.path));
  if (!(await emit(select(first, opts))) || !opts.follow) return;
  let pos = (await stat(target.path).catch(() => ({ size: 0, ino: 0 }))).size;
  let ino = (await stat(target.path).catch(() => ({ ino: 0 }))).ino;
  let partial = '';
  while (!signal.aborted) {
    const alive = target.alive();
    const s = await stat(target.path).catch(() => undefined);
    if (s !== undefined && (s.ino !== ino || s.size < pos)) {
      ino = s.ino; // rotated: read the new file from its start
      pos = 0;
      partial = '';
    }
    if (s !== undefined && s.size > pos) {
      const fh = await open(target.path, 'r');
      try {
        const buf = Buffer.alloc(s.size - pos);
        await fh.read(buf, 0, buf.length, pos);
        pos = s.size;
        const text = partial + buf.toString('utf8');
        const cut = text.lastIndexOf('\n');
        partial = text.slice(cut + 1);
        if (!(await emit(select(text.slice(0, cut + 1), {})))) return;
      } finally {
        await fh.close();
      }
      continue;
    }
    if (!alive) return;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
