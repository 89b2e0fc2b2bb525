/**
 * Runs the Raft interaction scripts in tests/testdata/raft/*.txt. Each script is a readable
 * transcript: a command, a `----` line, then the exact output the cluster must print (every
 * Ready and message), blocks separated by a blank line, `#` lines are comments. Any difference
 * fails the test; `ASPEN_REWRITE=1 deno test -A tests/raft_interaction_test.ts` regenerates the
 * expected blocks (read the diff before committing it).
 */
import { equal } from "node:assert/strict";
import { InteractionCluster } from "./sim/interaction.ts";

const DIRECTORY = new URL("./testdata/raft/", import.meta.url);
const isRewrite = Deno.env.get("ASPEN_REWRITE") === "1";

interface Block {
  readonly comments: string[];
  readonly command: string;
  readonly expected: string;
}

function parseScript(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split("\n");
  let i = 0;
  while (i < lines.length) {
    const comments: string[] = [];
    while (i < lines.length && (lines[i]!.startsWith("#") || lines[i]!.trim() === "")) {
      comments.push(lines[i]!);
      i++;
    }
    if (i >= lines.length) break;
    const command = lines[i++]!;
    if (lines[i] !== "----") throw new Error(`expected ---- after "${command}" at line ${i + 1}`);
    i++;
    const output: string[] = [];
    while (i < lines.length && lines[i] !== "") output.push(lines[i++]!);
    blocks.push({ comments, command, expected: output.join("\n") });
  }
  return blocks;
}

function render(blocks: Block[], outputs: string[]): string {
  const parts: string[] = [];
  blocks.forEach((block, index) => {
    const comments = block.comments.filter((line) => line.trim() !== "");
    const prefix = comments.length > 0 ? comments.join("\n") + "\n" : "";
    parts.push(`${prefix}${block.command}\n----\n${outputs[index]}`);
  });
  return parts.join("\n\n") + "\n";
}

const files = [...Deno.readDirSync(DIRECTORY)]
  .filter((entry) => entry.name.endsWith(".txt"))
  .map((entry) => entry.name)
  .sort();

for (const name of files) {
  Deno.test(`interaction script ${name}`, () => {
    const url = new URL(name, DIRECTORY);
    const blocks = parseScript(Deno.readTextFileSync(url));
    const cluster = new InteractionCluster();
    const outputs: string[] = [];
    for (const block of blocks) {
      const [command, ...args] = block.command.trim().split(/\s+/);
      const lines = cluster.run(command ?? "", args);
      const output = lines.length === 0 ? "ok" : lines.join("\n");
      outputs.push(output);
      if (!isRewrite) equal(output, block.expected, `${name}: "${block.command}"`);
    }
    if (isRewrite) Deno.writeTextFileSync(url, render(blocks, outputs));
  });
}
