import type { CommandRunner } from '../../core/index.ts';

/**
 * Many iproute2 changes in one process: `ip -force -batch -` / `bridge -force -batch -`
 * with one command per stdin line, so a reconcile of 100 remotes spawns one process per
 * tool instead of one per route, neighbour or FDB entry.
 *
 * Invariants:
 * - No items, no command.
 * - Every item gets a verdict: the result maps the index of each item that failed to the
 *   reason (the command and iproute2's message); every other item succeeded. Items run in
 *   order, so callers put adds before deletes by running two batches.
 * - `-force` keeps the batch going past a failing line and iproute2 reports each one as
 *   "Command failed -:N" after its message. A line iproute2 cannot even parse makes it
 *   exit at once, without that report; then every line after the last reported one is
 *   run again on its own (the fallback), which finds the bad line and runs the rest.
 *   Lines before the last reported one ran (iproute2 runs them in order).
 * - `gone`: for deletions, an item whose own re-run says the object is already gone
 *   counts as done (a delete the batch ran before it stopped is not a failure).
 * - Arguments must not hold white space or quotes (iproute2 splits batch lines itself);
 *   the items here are addresses, CIDRs, MACs, device names and keywords.
 */
export interface BatchItem {
  readonly args: readonly string[];
}

export interface BatchOptions {
  /** A re-run item whose stderr matches this counts as done (deletions of what is already gone). */
  readonly gone?: RegExp;
}

const FAILED_LINE = /^Command failed -:(\d+)$/;

/**
 * Pure: the failures iproute2 reported on stderr for `-force -batch -` (1-based line →
 * message), and whether it reported through to the end (false when it stopped early or
 * said something it did not attribute to a line).
 */
export function parseBatchErrors(stderr: string): { failed: Map<number, string>; complete: boolean } {
  const failed = new Map<number, string>();
  let pending: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line.trim() === '') continue;
    const m = FAILED_LINE.exec(line.trim());
    if (m?.[1] === undefined) {
      pending.push(line.trim());
      continue;
    }
    failed.set(Number(m[1]), pending.join('; ') || 'failed');
    pending = [];
  }
  return { failed, complete: pending.length === 0 };
}

function reason(tool: string, args: readonly string[], message: string): string {
  const hint = /Operation not permitted/.test(message) ? ' (not permitted: the gateway needs root or CAP_NET_ADMIN)' : '';
  return `${tool} ${args.join(' ')}: ${message}${hint}`;
}

/** Runs the items through one `TOOL -force -batch -`; returns the failed items' indexes with the reason. */
export async function runBatch(runner: CommandRunner, tool: 'ip' | 'bridge', items: readonly BatchItem[], options: BatchOptions = {}): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  if (items.length === 0) return out;
  const input = `${items.map((i) => i.args.join(' ')).join('\n')}\n`;
  const r = await runner.run(tool, ['-force', '-batch', '-'], { input, allowFailure: true });
  if (r.code === 0) return out;
  const { failed, complete } = parseBatchErrors(r.stderr);
  for (const [line, message] of failed) {
    const item = items[line - 1];
    if (item !== undefined) out.set(line - 1, reason(tool, item.args, message));
  }
  if (complete && failed.size > 0) return out;
  // iproute2 stopped early (or said nothing usable): run what may not have run, one by one
  const from = Math.max(0, ...failed.keys());
  for (let i = from; i < items.length; i++) {
    const item = items[i];
    if (item === undefined) continue;
    const one = await runner.run(tool, item.args, { allowFailure: true });
    if (one.code === 0 || (options.gone?.test(one.stderr) ?? false)) out.delete(i);
    else out.set(i, reason(tool, item.args, one.stderr.trim() || `exited ${String(one.code)}`));
  }
  return out;
}
