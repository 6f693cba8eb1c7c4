import { ErrorCodes, IsthmusError } from '../core/errors.ts';

/**
 * Parsed command line: positionals in order, and options by name. `--name value`,
 * `--name=value` and bare `--flag` (value "true") are accepted; a repeated option
 * keeps every value. Everything after `--` is passed through untouched in `rest`.
 */
export interface Args {
  readonly positionals: readonly string[];
  readonly options: ReadonlyMap<string, readonly string[]>;
  readonly rest: readonly string[];
}

/** Short options that take a value, kubectl style: `-n NS`, `-o FORMAT`. `-A` is --all-namespaces. */
const SHORT_VALUE: Readonly<Record<string, string>> = { '-n': 'namespace', '-o': 'output' };

/** `flags` names options that take no value. */
export function parseArgs(argv: readonly string[], flags: ReadonlySet<string> = new Set()): Args {
  const positionals: string[] = [];
  const options = new Map<string, string[]>();
  const rest: string[] = [];
  const put = (k: string, v: string): void => {
    const list = options.get(k) ?? [];
    list.push(v);
    options.set(k, list);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        put(a.slice(2, eq), a.slice(eq + 1));
      } else {
        const name = a.slice(2);
        const next = argv[i + 1];
        if (flags.has(name) || next === undefined || next.startsWith('--')) put(name, 'true');
        else {
          put(name, next);
          i++;
        }
      }
    } else if (SHORT_VALUE[a] !== undefined && argv[i + 1] !== undefined) {
      put(SHORT_VALUE[a], argv[i + 1] as string);
      i++;
    } else if (a === '-A') {
      put('all-namespaces', 'true');
    } else {
      positionals.push(a);
    }
  }
  return { positionals, options, rest };
}

/** The last value of an option, or undefined. */
export function opt(args: Args, name: string): string | undefined {
  const v = args.options.get(name);
  return v === undefined ? undefined : v[v.length - 1];
}

/** Options as a plain record (last value wins) for validateConfig; names are camelCased. */
export function optionRecord(args: Args): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of args.options) out[k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = v[v.length - 1] as string;
  return out;
}

export function usageError(message: string, usage: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${message}\nusage: ${usage}`);
}

/** `--help` text of a command run from a config schema: the first line, then one line per option (camelCase keys as --kebab-case). */
export function optionsHelp(first: string, schema: Readonly<Record<string, { readonly doc: string }>>): string {
  const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const width = Math.max(...Object.keys(schema).map((k) => flag(k).length)) + 2;
  return `${first}\n\n${Object.entries(schema).map(([k, f]) => `  ${flag(k).padEnd(width)}${f.doc}`).join('\n')}\n`;
}
