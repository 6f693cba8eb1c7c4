#!/usr/bin/env node
import { isIsthmusError, messageOf } from '../core/index.ts';
import type { Command } from './command.ts';
import { brokerCommand } from './broker.ts';
import { certsCommand } from './certs.ts';
import { diagnoseCommand } from './diagnose.ts';
import { dnsCommand } from './dns.ts';
import { gatherCommand } from './gather.ts';
import { gatewayCommand } from './gateway.ts';
import { joinCommand } from './join.ts';
import { leaveCommand } from './leave.ts';
import { mcsCommand } from './mcs.ts';
import { exportCommand, unexportCommand } from './mcs-verbs.ts';
import { showClustersetCommand } from './show.ts';
import { routeAgentCommand } from './route-agent.ts';
import { sandboxCommand } from './sandbox.ts';
import { uninstallCommand } from './uninstall.ts';
import { verifyCommand } from './verify.ts';

/**
 * The `isthmus` command. Subcommands are registered explicitly here; each lives in
 * its own file and stays thin: the logic is in the parts.
 */
function registry(): Map<string, Command> {
  const commands: Command[] = [
    certsCommand, brokerCommand, joinCommand, gatewayCommand, routeAgentCommand, leaveCommand, exportCommand, unexportCommand, showClustersetCommand, mcsCommand, dnsCommand, diagnoseCommand, verifyCommand, gatherCommand, uninstallCommand, sandboxCommand,
  ];
  return new Map(commands.map((c) => [c.name, c]));
}

function help(commands: Map<string, Command>): string {
  const lines = ['usage: isthmus <command> [options]', '', 'commands:'];
  for (const c of commands.values()) lines.push(`  ${c.name.padEnd(12)} ${c.summary}`);
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
  const command = commands.get(name);
  if (command === undefined) {
    process.stderr.write(`isthmus: unknown command "${name}"\n\n${help(commands)}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
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
