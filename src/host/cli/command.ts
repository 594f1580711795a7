// What a subcommand module exports (see src/host/cli/commands.ts for the table).

export interface CliCommand {
  name: string;
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}
