import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';

/**
 * The container shim (what conmon is to CRI-O): the sandbox kubelet starts one per
 * container, detached, so the container outlives a kubelet restart. It runs the
 * container's command with stdout and stderr on pipes and writes every line to the
 * container's log in the CRI format `<RFC 3339 nano time> <stdout|stderr> <F|P> <text>`,
 * which is what `kubectl logs --timestamps/--since` need; it rotates the log once it
 * passes `maxBytes` (one older file, `<log>.1`, is kept), writes the command's pid to
 * `<exitFile>.pid` and, when the command ends, `{code, signal, finishedAt}` to
 * `exitFile`, then exits.
 *
 * Signals sent to its process group reach the command too; the shim itself outlives
 * SIGTERM/SIGINT/SIGHUP so it can record how the command ended.
 *
 * usage: shim.ts <logFile> <exitFile> <maxBytes> -- <command> [args…]
 */
export const PARTIAL_LINE_BYTES = 16 * 1024;

/** One CRI log line for `text` (without its newline); `full` is false for a piece of a longer line. */
export function criLine(now: Date, stream: 'stdout' | 'stderr', full: boolean, text: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${nanoTime(now)} ${stream} ${full ? 'F' : 'P'} `), text, Buffer.from('\n')]);
}

/** RFC 3339 with nine fractional digits, as the CRI log format has it. */
export function nanoTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

/**
 * Splits `pending + chunk` into whole lines and pieces longer than PARTIAL_LINE_BYTES;
 * returns them and what stays pending. Pure.
 */
export function splitLines(pending: Buffer, chunk: Buffer): { lines: { text: Buffer; full: boolean }[]; rest: Buffer } {
  let buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  const lines: { text: Buffer; full: boolean }[] = [];
  for (;;) {
    const nl = buf.indexOf(0x0a);
    if (nl >= 0 && nl <= PARTIAL_LINE_BYTES) {
      lines.push({ text: buf.subarray(0, nl), full: true });
      buf = buf.subarray(nl + 1);
    } else if (buf.length > PARTIAL_LINE_BYTES) {
      lines.push({ text: buf.subarray(0, PARTIAL_LINE_BYTES), full: false });
      buf = buf.subarray(PARTIAL_LINE_BYTES);
    } else {
      return { lines, rest: Buffer.from(buf) };
    }
  }
}

class LogWriter {
  #fd: number;
  #size: number;
  readonly #path: string;
  readonly #max: number;
  constructor(path: string, max: number) {
    this.#path = path;
    this.#max = max;
    this.#fd = openSync(path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }
  write(b: Buffer): void {
    if (this.#size + b.length > this.#max && this.#size > 0) {
      closeSync(this.#fd);
      renameSync(this.#path, `${this.#path}.1`);
      this.#fd = openSync(this.#path, 'a', 0o600);
      this.#size = 0;
    }
    writeSync(this.#fd, b);
    this.#size += b.length;
  }
}

function main(argv: readonly string[]): void {
  const sep = argv.indexOf('--');
  const [logFile, exitFile, maxRaw] = argv.slice(0, sep);
  const command = argv.slice(sep + 1);
  if (sep < 3 || logFile === undefined || exitFile === undefined || command[0] === undefined) {
    process.stderr.write('usage: shim.ts <logFile> <exitFile> <maxBytes> -- <command> [args…]\n');
    process.exit(2);
  }
  const log = new LogWriter(logFile, Math.max(4096, Number(maxRaw) || 10 * 1024 * 1024));
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, () => {});
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) writeFileSync(`${exitFile}.pid`, String(child.pid));
  const pending: Record<'stdout' | 'stderr', Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  const pipe = (name: 'stdout' | 'stderr'): void => {
    child[name]?.on('data', (d: Buffer) => {
      const { lines, rest } = splitLines(pending[name], d);
      pending[name] = rest;
      const now = new Date();
      for (const l of lines) log.write(criLine(now, name, l.full, l.text));
    });
  };
  pipe('stdout');
  pipe('stderr');
  const finish = (code: number, signal: string | null): void => {
    for (const name of ['stdout', 'stderr'] as const) if (pending[name].length > 0) log.write(criLine(new Date(), name, true, pending[name]));
    writeFileSync(`${exitFile}.tmp`, JSON.stringify({ code, signal, finishedAt: new Date().toISOString() }));
    renameSync(`${exitFile}.tmp`, exitFile);
    process.exit(0);
  };
  child.on('error', (e: NodeJS.ErrnoException) => {
    log.write(criLine(new Date(), 'stderr', true, Buffer.from(`${command[0]}: ${e.message}`)));
    finish(e.code === 'ENOENT' ? 127 : 126, null);
  });
  child.on('close', (code, signal) => finish(code ?? 128 + (signal === null ? 0 : signalNumber(signal)), signal));
}

function signalNumber(s: NodeJS.Signals): number {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };
  return table[s] ?? 0;
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) main(process.argv.slice(2));
