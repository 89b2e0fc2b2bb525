/**
 * StateMachine.stageRestore(): a snapshot's bytes are checked and written to a synced file
 * beside the database off the event loop, and the restore of the same bytes that follows only
 * swaps the files. Bytes that fail the checks stage nothing; a restore of other bytes, a newer
 * staging or a close forget what was staged and remove its file; files a crash left behind are
 * removed at open. Real files.
 */
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AspenError } from "./errors.ts";
import { checkSnapshot, checkSnapshotInSteps } from "./_snapshot.ts";
import { encodeCommand } from "./command_codec.ts";
import { StateMachine } from "./state_machine.ts";

function filled(path: string, keys: number, from = 1): StateMachine {
  const machine = StateMachine.open({ path, synchronous: "normal" });
  machine.apply(Array.from({ length: keys }, (_, i) => ({
    index: from + i,
    data: encodeCommand({ type: "put", key: `k${i}`, value: `v${from}`, lease: 0, prevKv: false }),
  })));
  return machine;
}

function restoreFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name)
    .filter((name) => name.includes(".restore")).sort();
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-staged-restore-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a staged restore writes its file first, and the restore only swaps it in", async () => {
  await withDir(async (dir) => {
    const source = filled(`${dir}/source.db`, 50);
    const target = filled(`${dir}/target.db`, 5, 1);
    try {
      const bytes = source.snapshot();
      await target.stageRestore(bytes);
      equal(restoreFiles(dir).length, 1, "written and synced beside the database");
      equal(target.appliedIndex(), 5, "staging changes nothing the state machine holds");
      target.restore(bytes);
      deepStrictEqual(restoreFiles(dir), [], "the staged file became the database");
      equal(target.appliedIndex(), 50);
      equal(target.stateHash(), source.stateHash());
      target.close();
      const reopened = StateMachine.open({ path: `${dir}/target.db`, synchronous: "normal" });
      try {
        equal(reopened.stateHash(), source.stateHash(), "the swap is durable");
      } finally {
        reopened.close();
      }
    } finally {
      source.close();
      target.close();
    }
  });
});

Deno.test("bytes that fail the checks stage nothing", async () => {
  await withDir(async (dir) => {
    const target = filled(`${dir}/target.db`, 5);
    try {
      const garbage = new Uint8Array(4096).fill(3);
      await rejects(
        target.stageRestore(garbage),
        (error) => error instanceof AspenError && error.code === "bad_request",
      );
      deepStrictEqual(restoreFiles(dir), []);
      equal(target.appliedIndex(), 5);
    } finally {
      target.close();
    }
  });
});

Deno.test("what was staged is forgotten by other bytes, a newer staging and close", async (t) => {
  await t.step("a restore of other bytes restores those, and removes the staged file", async () => {
    await withDir(async (dir) => {
      const one = filled(`${dir}/one.db`, 20);
      const two = filled(`${dir}/two.db`, 30);
      const target = filled(`${dir}/target.db`, 5);
      try {
        await target.stageRestore(one.snapshot());
        target.restore(two.snapshot());
        equal(target.stateHash(), two.stateHash());
        deepStrictEqual(restoreFiles(dir), []);
      } finally {
        for (const machine of [one, two, target]) machine.close();
      }
    });
  });
  await t.step("a newer staging, even one that overtakes it while it writes", async () => {
    await withDir(async (dir) => {
      const one = filled(`${dir}/one.db`, 20);
      const two = filled(`${dir}/two.db`, 30);
      const target = filled(`${dir}/target.db`, 5);
      try {
        const twoBytes = two.snapshot();
        await Promise.all([target.stageRestore(one.snapshot()), target.stageRestore(twoBytes)]);
        equal(restoreFiles(dir).length, 1, restoreFiles(dir).join());
        target.restore(twoBytes);
        equal(target.stateHash(), two.stateHash());
        deepStrictEqual(restoreFiles(dir), []);
      } finally {
        for (const machine of [one, two, target]) machine.close();
      }
    });
  });
  await t.step("a restore while a staging still writes", async () => {
    await withDir(async (dir) => {
      const one = filled(`${dir}/one.db`, 20);
      const two = filled(`${dir}/two.db`, 30);
      const target = filled(`${dir}/target.db`, 5);
      try {
        const staging = target.stageRestore(one.snapshot());
        target.restore(two.snapshot());
        await staging;
        equal(target.stateHash(), two.stateHash(), "the late staging changed nothing");
        deepStrictEqual(restoreFiles(dir), []);
      } finally {
        for (const machine of [one, two, target]) machine.close();
      }
    });
  });
  await t.step("close, and the next open after a crash", async () => {
    await withDir(async (dir) => {
      const one = filled(`${dir}/one.db`, 20);
      const target = filled(`${dir}/target.db`, 5);
      try {
        await target.stageRestore(one.snapshot());
        target.close();
        deepStrictEqual(restoreFiles(dir), []);
        // A crash between staging and restore leaves the file: the next open removes it.
        Deno.writeFileSync(`${dir}/target.db.restore-left-by-a-crash`, new Uint8Array(10));
        Deno.writeFileSync(`${dir}/target.db.restore`, new Uint8Array(10));
        const reopened = StateMachine.open({ path: `${dir}/target.db`, synchronous: "normal" });
        reopened.close();
        deepStrictEqual(restoreFiles(dir), []);
        ok(Deno.statSync(`${dir}/one.db`).isFile, "other files stay");
      } finally {
        one.close();
        target.close();
      }
    });
  });
});

Deno.test("the check in steps finds what the check in one piece finds, in any step", async () => {
  await withDir(async (dir) => {
    const machine = filled(`${dir}/state.db`, 50);
    const good = machine.snapshot();
    machine.close();
    equal(await checkSnapshotInSteps(good, 7), checkSnapshot(good));
    equal(await checkSnapshotInSteps(good, 7), 50);
    for (const key of ["k0", "k27", "k9"]) {
      // "k9" sorts last: the rows after the last full step are checked too.
      const path = `${dir}/damaged-${key}.db`;
      Deno.writeFileSync(path, good);
      const raw = new DatabaseSync(path);
      raw.exec("PRAGMA journal_mode = DELETE");
      raw.prepare("UPDATE kv SET value = 'tampered' WHERE key = CAST(? AS BLOB)").run(key);
      raw.close();
      const damaged = Deno.readFileSync(path);
      const isRefused = (error: unknown) =>
        error instanceof AspenError && error.code === "bad_request" &&
        error.message.includes(`"${key}"`);
      throws(() => checkSnapshot(damaged), isRefused);
      await rejects(checkSnapshotInSteps(damaged, 7), isRefused);
      await rejects(checkSnapshotInSteps(damaged, 4_096), isRefused);
    }
  });
});
