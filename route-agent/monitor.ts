import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { messageOf, type Logger, type Service } from '../core/index.ts';

/**
 * Repair on change instead of on a short timer: long-lived `ip monitor` (and `nft monitor`
 * with the nftables backend) report every change the kernel makes; a line that can touch
 * what the route agent made calls `onChange` (the agent's coalescing queue turns a burst into
 * one reconcile). A periodic resync stays as the safety net (and the only one for iptables,
 * which has no monitor), so it can be long and an idle node spawns nothing.
 *
 * Invariants: a monitor that exits is restarted after `restartMs` and calls `onChange` once
 * (what changed meanwhile is unknown); stop() kills every monitor and restarts none, for good.
 */
export interface Watch {
  readonly command: string;
  readonly args: readonly string[];
  /** Whether an output line concerns us. */
  readonly concerns: (line: string) => boolean;
}

/** `ip monitor label route rule link address` lines that concern our tables, rules, device or the node's addresses. */
export function ipWatch(tables: readonly number[], device: string): Watch {
  const table = new RegExp(`\\b(table|lookup) (${tables.join('|')})\\b`);
  const dev = new RegExp(`\\b${device.replace(/[^A-Za-z0-9]/g, (c) => `\\${c}`)}\\b`);
  return {
    command: 'ip',
    args: ['monitor', 'label', 'route', 'rule', 'link', 'address'],
    concerns: (line) => {
      if (line.startsWith('[ROUTE]') || line.startsWith('[RULE]')) return table.test(line) || line.includes('suppress_prefixlength');
      if (line.startsWith('[LINK]')) return dev.test(line);
      return line.startsWith('[ADDR]') && /\sinet\s/.test(line); // IPv4 only: link-local IPv6 churn of new veths is not ours
    },
  };
}

/** `nft monitor` lines about our table (kube-proxy's and the CNI's churn in theirs is ignored). */
export function nftWatch(table: string): Watch {
  const ours = new RegExp(`\\bip ${table}\\b`);
  return { command: 'nft', args: ['monitor'], concerns: (line) => ours.test(line) };
}

export class ChangeMonitor implements Service {
  readonly name = 'change-monitor';
  readonly #watches: readonly Watch[];
  readonly #onChange: () => void;
  readonly #logger: Logger;
  readonly #restartMs: number;
  readonly #netns: string | undefined;
  readonly #procs = new Set<ChildProcess>();
  #stopped = false;

  /** `netns`: watch that network namespace instead of this process's (tests). */
  constructor(watches: readonly Watch[], onChange: () => void, logger: Logger, o: { restartMs?: number; netns?: string } = {}) {
    this.#watches = watches;
    this.#netns = o.netns;
    this.#onChange = onChange;
    this.#logger = logger;
    this.#restartMs = o.restartMs ?? 5000;
  }

  async start(): Promise<void> {
    if (this.#stopped) return; // stopped before it started: stays stopped
    for (const w of this.#watches) this.#spawn(w);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#procs].map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    })));
  }

  #spawn(w: Watch): void {
    if (this.#stopped) return;
    const [command, args] = this.#netns === undefined ? [w.command, w.args] : ['ip', ['netns', 'exec', this.#netns, w.command, ...w.args]];
    const p = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#procs.add(p);
    let err = '';
    p.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-500); });
    createInterface({ input: p.stdout }).on('line', (line) => {
      if (w.concerns(line)) this.#onChange();
    });
    p.on('error', (e) => this.#logger.warn({ err: messageOf(e), command: w.command }, 'change monitor could not start; the periodic resync still repairs'));
    p.on('exit', (code) => {
      this.#procs.delete(p);
      if (this.#stopped) return;
      this.#logger.warn({ command: `${w.command} ${w.args.join(' ')}`, code, stderr: err.trim() }, 'change monitor exited; restarting it');
      setTimeout(() => {
        if (this.#stopped) return;
        this.#onChange();
        this.#spawn(w);
      }, this.#restartMs).unref();
    });
  }
}
