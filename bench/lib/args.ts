// Command-line flags of the benchmarks: `--name value`.

/** The value after `--name`, or `def` when the flag is absent. */
export function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? def) : def;
}

/** `--name` as a number, or `def`; throws on a value that is not a number. */
export function numberArg(name: string, def: number): number {
  const text = arg(name, String(def));
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} ${text}: not a number`);
  return n;
}
