import type { CommandRunner, RunOptions, RunResult } from './exec.ts';

/**
 * A CommandRunner whose every command runs inside one network namespace: a part
 * written for "this host" (a gateway, a route agent) can be driven inside a
 * sandbox node or a test's namespace unchanged.
 */
export class NetnsRunner implements CommandRunner {
  readonly #inner: CommandRunner;
  readonly netns: string;

  constructor(inner: CommandRunner, netns: string) {
    this.#inner = inner;
    this.netns = netns;
  }

  run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.#inner.run(command, args, { ...options, netns: options.netns ?? this.netns });
  }
}
