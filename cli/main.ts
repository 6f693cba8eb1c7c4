#!/usr/bin/env node
import { isIsthmusError, messageOf } from '../core/errors.ts';
import type { Command } from './command.ts';

/**
 * The `isthmus` command. Subcommands are registered here with their one-line summary and
 * loaded only when run: each lives in its own file and stays thin (the logic is in the
 * parts), and a command does not pay for the others' dependencies — the route agent on
 * every node would otherwise load the broker's gRPC, etcd and Kubernetes client libraries.
 */
interface Entry {
  readonly summary: string;
  load(): Promise<Command>;
}

function registry(): Map<string, Entry> {
  return new Map<string, Entry>([
    ['certs', { summary: 'create the clusterset CA, issue and renew certificates, WireGuard keys, IPsec PSKs', load: async () => (await import('./certs.ts')).certsCommand }],
    ['broker', { summary: 'serve the clusterset broker (gRPC over etcd, mTLS); broker deploy puts it in a cluster, broker token mints join tokens', load: async () => (await import('./broker.ts')).brokerCommand }],
    ['join', { summary: 'join a cluster to the clusterset of a broker-info.json (checks first, then installs Isthmus)', load: async () => (await import('./join.ts')).joinCommand }],
    ['gateway', { summary: 'run the gateway engine: active/passive, cables to every remote cluster, health, Gateway status', load: async () => (await import('./gateway.ts')).gatewayCommand }],
    ['route-agent', { summary: 'run the route agent on a node: remote CIDRs to the active gateway, no masquerade, MSS clamp, fail closed', load: async () => (await import('./route-agent.ts')).routeAgentCommand }],
    ['leave', { summary: 'take this cluster out of the clusterset (its records at the broker; every cable to it goes)', load: async () => (await import('./leave.ts')).leaveCommand }],
    ['export', { summary: 'export a Service to the clusterset (creates its ServiceExport)', load: async () => (await import('./mcs-verbs.ts')).exportCommand }],
    ['unexport', { summary: 'stop exporting a Service (deletes its ServiceExport)', load: async () => (await import('./mcs-verbs.ts')).unexportCommand }],
    ['show', { summary: 'show gateways, connections, endpoints, networks, exports, imports, versions or all of a cluster', load: async () => (await import('./show.ts')).showClustersetCommand }],
    ['mcs', { summary: 'run the MCS controller: ServiceExports to the broker, ServiceImports and EndpointSlices from it', load: async () => (await import('./mcs.ts')).mcsCommand }],
    ['policy', { summary: 'ClusterSetNetworkPolicy: test a cross-cluster flow, apply policies, run the controller or the node agent', load: async () => (await import('./policy.ts')).policyCommand }],
    ['dns', { summary: 'serve clusterset.local (ClusterSet DNS 1.0.0) from the cluster\'s ServiceImports', load: async () => (await import('./dns.ts')).dnsCommand }],
    ['diagnose', { summary: 'check the clusterset: joins, gateways and cables, route agents, CoreDNS, certificates, broker records', load: async () => (await import('./diagnose.ts')).diagnoseCommand }],
    ['verify', { summary: 'test connectivity and service discovery between two joined clusters (JUnit report)', load: async () => (await import('./verify.ts')).verifyCommand }],
    ['gather', { summary: 'collect objects and logs of Isthmus from clusters into one archive (secrets redacted)', load: async () => (await import('./gather.ts')).gatherCommand }],
    ['uninstall', { summary: 'take a cluster out of the clusterset and remove everything of Isthmus from it', load: async () => (await import('./uninstall.ts')).uninstallCommand }],
    ['sandbox', { summary: 'a clusterset of real clusters on this machine (up, down, status, kubeconfig)', load: async () => (await import('./sandbox.ts')).sandboxCommand }],
  ]);
}

function help(commands: Map<string, Entry>): string {
  const lines = ['usage: isthmus <command> [options]', '', 'commands:'];
  for (const [name, c] of commands) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', 'Run `isthmus <command> --help` for a command\'s options.');
  return lines.join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  const commands = registry();
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help(commands) + '\n');
    return name === undefined ? 2 : 0;
  }
  const entry = commands.get(name);
  if (entry === undefined) {
    process.stderr.write(`isthmus: unknown command "${name}"\n\n${help(commands)}\n`);
    return 2;
  }
  try {
    return await (await entry.load()).run(rest);
  } catch (err) {
    if (isIsthmusError(err)) {
      process.stderr.write(`isthmus ${name}: ${err.message}\n`);
      if (process.env['ISTHMUS_DEBUG'] === '1' && err.cause !== undefined) process.stderr.write(`cause: ${messageOf(err.cause)}\n`);
      return 1;
    }
    process.stderr.write(`isthmus ${name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
