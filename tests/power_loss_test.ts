/**
 * The power-loss shim (tests/chaos/power_loss_shim.c) and its rollback, on a small Deno program
 * run under the shim: it writes and syncs files the way our nodes do (Deno file writes, fsync,
 * fdatasync through a second handle, an O_TRUNC rewrite, and SQLite in WAL mode, first with
 * FULL syncs and then with syncs off), prints "ready", and is killed with -9. After the
 * rollback only the synced bytes may remain: every file must hold exactly what it held at its
 * last completed fsync, and the database must open with exactly its synced rows. Skipped, with
 * the reason printed, where no C compiler can build the shim.
 *
 * A regression found by the chaos power-loss nemesis: a node stores its peer identity on first
 * start; the files were renamed into place unsynced, so a power loss soon after left an empty
 * certificate and the node never started again ("peer_cert.pem holds no PEM CERTIFICATE").
 * The identity written under the shim must load, unchanged, after a power loss.
 */
import { equal } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { createClusterCa, loadOrCreatePeerIdentity } from "../transport/mod.ts";
import { PROJECT_ROOT } from "./_source_files.ts";
import {
  powerLossEnv,
  resetJournals,
  rollBackToLastSync,
  runUntilLineAndKill,
  withPowerLossShim,
} from "./chaos/power_loss.ts";

/** Rows committed with synchronous = FULL, then rows committed with syncs off. */
const SYNCED_ROWS = 100;
const UNSYNCED_ROWS = 3_000;

const PROGRAM = `
import { DatabaseSync } from "node:sqlite";
const dir = Deno.args[0];
const text = (value) => new TextEncoder().encode(value);

const plain = Deno.openSync(dir + "/plain.bin", { write: true, create: true });
plain.writeSync(text("synced:v1"));
plain.syncSync();
plain.seekSync(0, Deno.SeekMode.Start);
plain.writeSync(text("UNSYNCED!"));
plain.seekSync(0, Deno.SeekMode.End);
plain.writeSync(text("+tail"));

const fresh = Deno.openSync(dir + "/fresh.bin", { write: true, create: true });
fresh.writeSync(text("never synced"));

const replaced = Deno.openSync(dir + "/replaced.bin", { write: true, truncate: true });
replaced.writeSync(text("new"));

const side = Deno.openSync(dir + "/side.bin", { write: true, create: true });
side.writeSync(text("abc"));
const syncer = await Deno.open(dir + "/side.bin", { read: true, write: true });
await syncer.syncData();
side.writeSync(text("def"));

const db = new DatabaseSync(dir + "/db.sqlite");
db.exec("PRAGMA journal_mode = WAL");
db.exec("PRAGMA synchronous = FULL");
db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
for (let i = 0; i < ${SYNCED_ROWS}; i++) insert.run("x".repeat(200));
db.exec("PRAGMA synchronous = OFF");
for (let i = 0; i < ${UNSYNCED_ROWS}; i++) insert.run("y".repeat(200));
console.log("ready");
setInterval(() => {}, 1000);
`;

Deno.test({
  name: "power-loss shim: after kill -9 and rollback only the synced bytes remain",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withPowerLossShim(t, async ({ dir, shimPath }) => {
      const dataDir = `${dir}/data`;
      const journalDir = `${dir}/journals`;
      await Deno.mkdir(dataDir);
      await Deno.writeTextFile(`${dataDir}/replaced.bin`, "old content");
      await Deno.writeTextFile(`${dir}/program.js`, PROGRAM);
      resetJournals(journalDir);
      await runUntilLineAndKill(
        `${dir}/program.js`,
        [dataDir],
        powerLossEnv(shimPath, { dataDir, journalDir }),
      );
      const rolledBack = await rollBackToLastSync({ dataDir, journalDir });
      const read = (name: string) => Deno.readTextFile(`${dataDir}/${name}`);
      equal(await read("plain.bin"), "synced:v1");
      equal(await read("fresh.bin"), "", "a file created and never synced is empty");
      equal(await read("replaced.bin"), "old content", "an O_TRUNC rewrite is undone");
      equal(await read("side.bin"), "abc", "fdatasync through a second handle counts");
      const db = new DatabaseSync(`${dataDir}/db.sqlite`);
      try {
        equal(db.prepare("PRAGMA quick_check").get()?.quick_check, "ok");
        equal(db.prepare("SELECT count(*) AS n FROM t").get()?.n, SYNCED_ROWS);
      } finally {
        db.close();
      }
      console.log(`rolled back ${JSON.stringify(rolledBack)}`);
    });
  },
});

Deno.test({
  name: "power-loss: a node's peer identity survives a power loss after its first start",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await withPowerLossShim(t, async ({ dir, shimPath }) => {
      const dataDir = `${dir}/data`;
      const journalDir = `${dir}/journals`;
      await Deno.mkdir(dataDir);
      const ca = await createClusterCa();
      await Deno.writeTextFile(`${dir}/ca.json`, JSON.stringify(ca));
      await Deno.writeTextFile(`${dir}/program.ts`, IDENTITY_PROGRAM);
      resetJournals(journalDir);
      const output = await runUntilLineAndKill(
        `${dir}/program.ts`,
        [dataDir],
        powerLossEnv(shimPath, { dataDir, journalDir }),
      );
      await rollBackToLastSync({ dataDir, journalDir });
      const identity = await loadOrCreatePeerIdentity({
        nodeId: 1,
        listenHost: "127.0.0.1",
        ca,
        directory: dataDir,
      });
      equal(output, `ready ${identity.fingerprint}`, "the stored identity is kept");
    });
  },
});

const IDENTITY_PROGRAM = `
import { loadOrCreatePeerIdentity } from "${PROJECT_ROOT}transport/mod.ts";
const dir = Deno.args[0];
const ca = JSON.parse(await Deno.readTextFile(dir + "/../ca.json"));
const identity = await loadOrCreatePeerIdentity({
  nodeId: 1,
  listenHost: "127.0.0.1",
  ca,
  directory: dir,
});
console.log("ready " + identity.fingerprint);
setInterval(() => {}, 1000);
`;
