#!/usr/bin/env node
import { isIsthmusError, messageOf } from '../core/errors.ts';
import { help, registry } from './registry.ts';

/** The `isthmus` command: runs the subcommand of the registry (registry.ts) named first. */
export async function main(argv: readonly string[]): Promise<number> {
  const commands = registry();
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help(commands) + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    const [{ readFileSync }, { join }, { projectRoot }] = await Promise.all([import('node:fs'), import('node:path'), import('../sandbox/versions.ts')]);
    const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
    process.stdout.write(`isthmus ${pkg.version} (node ${process.version})\n`);
    return 0;
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
