import type { CommandRunner } from '../core/index.ts';

/**
 * Cutting flows a rule no longer allows (`isthmus policy agent --cut-flows`): the conntrack
 * entries of flows from remote pod CIDRs are deleted, so the next packet of every such flow
 * is looked at again as a new one (Linux tracks a TCP flow picked up mid-stream, with
 * nf_conntrack_tcp_loose, the default): one the rules still allow continues, one they now
 * deny is dropped. Without it an admitted flow lasts until it ends (replies and the rest of
 * it pass by conntrack).
 */
export async function cutRemoteFlows(runner: CommandRunner, remoteCidrs: readonly string[]): Promise<number> {
  let deleted = 0;
  for (const cidr of remoteCidrs) {
    const r = await runner.run('conntrack', ['-D', '-s', cidr], { allowFailure: true });
    // conntrack prints "… flow entries have been deleted." (exit 1 when there were none)
    deleted += Number(/(\d+) flow entries have been deleted/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 0);
  }
  return deleted;
}
