/**
 * SqliteLogStorage.open() makes what it reads durable. A process that crashed before its log's
 * fsync leaves the written entries in the page cache; the restarted replica reads and applies
 * them, and its state machine makes that durable on its own. If a power loss then took the
 * entries back, the state machine would be ahead of the log and the replica could not start
 * (found by the simulator's disk model, seed 119). Checked on the real storage under the
 * power-loss shim (tests/chaos/power_loss_shim.c): a child writes entries without syncing and
 * is killed (a process crash: its journal carries on), a second child opens the log and is
 * killed, then the shim's rollback plays the power loss: every entry must still be there.
 * Skipped, with the reason printed, where no C compiler can build the shim.
 */
import { equal } from "node:assert/strict";
import { SqliteLogStorage } from "../shard/mod.ts";
import { PROJECT_ROOT } from "./_source_files.ts";
import {
  powerLossEnv,
  resetJournals,
  rollBackToLastSync,
  runUntilLineAndKill,
  withPowerLossShim,
} from "./chaos/power_loss.ts";

const ENTRIES = 500;

const PROGRAM = `
import { SqliteLogStorage } from "${PROJECT_ROOT}shard/mod.ts";
const [path, phase] = Deno.args;
const storage = SqliteLogStorage.open({
  path,
  bootstrap: { voters: [1], learners: [] },
  isFlushDeferred: true,
});
if (phase === "write") {
  const entries = Array.from({ length: ${ENTRIES} }, (_, i) => ({
    index: i + 1, term: 1, type: "normal", data: new Uint8Array(100).fill(i % 256),
  }));
  // Not must-sync: committed to SQLite with synchronous=NORMAL, never fsynced.
  storage.persist({ hardState: null, entries, snapshot: null }, false);
}
console.log("ready " + storage.lastIndex());
setInterval(() => {}, 1000);
`;

Deno.test({
  name: "SqliteLogStorage.open() syncs what it read: a power loss after a restart keeps it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withPowerLossShim(t, async ({ dir, shimPath }) => {
      const dataDir = `${dir}/data`;
      const journalDir = `${dir}/journals`;
      await Deno.mkdir(dataDir);
      await Deno.writeTextFile(`${dir}/program.ts`, PROGRAM);
      resetJournals(journalDir);
      const env = powerLossEnv(shimPath, { dataDir, journalDir });
      const path = `${dataDir}/raft-log.db`;
      equal(
        await runUntilLineAndKill(`${dir}/program.ts`, [path, "write"], env),
        `ready ${ENTRIES}`,
      );
      equal(
        await runUntilLineAndKill(`${dir}/program.ts`, [path, "open"], env),
        `ready ${ENTRIES}`,
      );
      await rollBackToLastSync({ dataDir, journalDir });
      const storage = SqliteLogStorage.open({ path, bootstrap: null });
      try {
        equal(storage.lastIndex(), ENTRIES, "the entries read at the restart survived");
      } finally {
        storage.close();
      }
    });
  },
});
