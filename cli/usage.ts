/**
 * Help text for `aspen help` and `aspen <command> --help`, rendered from the command table so
 * that every flag the parser accepts is listed.
 */
import type { Command } from "./command.ts";

/** The top-level usage: every command with its one-line summary. */
export function formatMainUsage(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  const lines = [
    "aspen: a sharded, Raft-replicated, transactional key-value store",
    "",
    "Usage: aspen <command> [flags]",
    "",
    "Commands:",
    ...commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    "",
    "Run 'aspen <command> --help' for the flags of a command.",
  ];
  return lines.join("\n") + "\n";
}

/** The usage of one command: its forms, its details and every flag with its help. */
export function formatCommandUsage(command: Command): string {
  const lines = [
    `aspen ${command.name}: ${command.summary}`,
    "",
    "Usage:",
    ...command.usage.map((form) => `  aspen ${form}`),
  ];
  if (command.details !== undefined) lines.push("", command.details);
  lines.push("", "Flags:");
  for (const [name, spec] of Object.entries(command.flags)) {
    lines.push(spec.type === "string" ? `  --${name} ${spec.valueName ?? "VALUE"}` : `  --${name}`);
    const notes = [
      spec.defaultText === undefined ? null : `default ${spec.defaultText}`,
      spec.env === undefined ? null : `env ${spec.env}`,
    ].filter((note) => note !== null);
    lines.push(`      ${spec.help}${notes.length === 0 ? "" : ` (${notes.join("; ")})`}`);
  }
  return lines.join("\n") + "\n";
}
