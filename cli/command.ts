/** One `isthmus` subcommand (its summary is in main.ts's registry). run() returns the process exit code. */
export interface Command {
  readonly name: string;
  run(args: readonly string[]): Promise<number>;
}
