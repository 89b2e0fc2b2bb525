/**
 * A failed fsync of the Raft log ends the node with a message that says why (STYLE §7: a
 * failure where going on could lose acknowledged data is not retried). A child process
 * (tests/fixtures/sync_failure_child.ts) runs one replica on a real SQLite log whose fsync
 * fails with EIO; the test checks that the child exits non-zero on its own, naming the file,
 * the failed fsync and the risk, and never prints `survived`.
 */
import { equal, match, notEqual } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const FIXTURE = fileURLToPath(new URL("./fixtures/sync_failure_child.ts", import.meta.url));

Deno.test("a failed fsync of the Raft log stops the process with the reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-sync-failure-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FIXTURE, dir],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    notEqual(output.code, 0, `the child must fail; stderr:\n${stderr}`);
    equal(stdout.includes("survived"), false);
    match(stderr, /FatalStorageError: Cannot make the Raft log ".*raft-log\.db" durable/);
    match(stderr, /the fsync failed \(Input\/output error/);
    match(stderr, /continuing could lose acknowledged writes, so this node stops/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
