import type { Command } from './command.ts';

/**
 * `isthmus policy`: ClusterSetNetworkPolicy — test, apply, the controller (policy-verbs.ts)
 * and the node agent (policy-agent.ts). Each is loaded only when it runs, so the agent on
 * every node never loads @kubernetes/client-node.
 */
export const policyCommand: Command = {
  name: 'policy',
  async run(argv) {
    if (argv[0] === 'agent') return (await import('./policy-agent.ts')).runAgent(argv.slice(1));
    if (argv[0] === 'controller') return (await import('./policy-verbs.ts')).runController(argv.slice(1));
    return (await import('./policy-verbs.ts')).runPolicyVerb(argv);
  },
};
