import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, type Lab } from '../../test/broker-harness.ts';

/**
 * The broker in its own process, started exactly as `isthmus broker` starts it, so a
 * benchmark can read its CPU and RSS from /proc without counting its own clients.
 */
export interface BrokerProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly metricsPort: number;
  log(): string;
  stop(): Promise<void>;
}

const TICK = 100; // /proc clock ticks per second (USER_HZ on Linux)

/** CPU seconds (user + system) and RSS of a process. */
export function procStat(pid: number): { cpuSeconds: number; rssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpu = (Number(fields[11]) + Number(fields[12])) / TICK;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuSeconds: cpu, rssMb: rssKb / 1024 };
}

/** Starts `isthmus broker` on the lab's etcd and PKI with `extra` options and Node flags. */
export async function spawnBroker(lab: Lab, extra: readonly string[], nodeFlags: readonly string[] = []): Promise<BrokerProcess> {
  const port = await freePort();
  const metricsPort = await freePort();
  const proc = spawn(process.execPath, [...nodeFlags, '--no-warnings', '--input-type=module', '-e',
    `const { brokerCommand } = await import(${JSON.stringify(new URL('../../cli/broker.ts', import.meta.url).href)}); process.exitCode = await brokerCommand.run(process.argv.slice(1));`,
    '--', '--etcd', lab.etcdHosts.join(','), '--listen', `127.0.0.1:${port}`, '--tls-dir', join(lab.pki, 'broker'),
    '--metrics', `127.0.0.1:${metricsPort}`, ...extra,
  ], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ISTHMUS_LOG_LEVEL: 'warn' } });
  let log = '';
  proc.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  return {
    proc, pid: proc.pid as number, port, metricsPort,
    log: () => log,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
