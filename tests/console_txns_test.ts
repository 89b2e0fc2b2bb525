/// <reference lib="dom" />
/**
 * The console's Transactions page in a real browser (Debian's chromium through playwright-core)
 * against a real node: started in process with SHARDS shards (real SQLite, real Raft) and
 * served on a loopback port, so that the test can also plant a transaction the way a
 * coordinator that stopped after its prepares leaves one (raw txnPrepare proposals).
 *
 * Checks: with nothing pending the page says so; a planted pending txn shows with a pending
 * receipt for each participant shard and its deadline, and its intents show per shard; a
 * cross-shard txn run through the API shows under "Latest committed" with a committed receipt
 * per shard; cross-shard commits made while the page is open show as a rate; the browser logs
 * no error. Skipped without /usr/bin/chromium. Screenshots go to test-output/ui/txns-*.png.
 */
import { equal, ok } from "node:assert/strict";
import { createCredentials, formatCredentials } from "../server/auth.ts";
import { loadConfig } from "../server/config.ts";
import { Logger } from "../server/log.ts";
import { type AspenNode, startNode } from "../server/node/mod.ts";
import { createNodeApp } from "../server/serve.ts";
import { type ApplyResult, shardForKey } from "../shard/mod.ts";
import { createClusterCa } from "../transport/mod.ts";
import { CHROMIUM_PATH, launchBrowser, openPage, screenshot } from "./fixtures/ui_browser.ts";

const SHARDS = 4;
const PLANTED_TXN = "1.1.7001";
const hasChromium = await Deno.stat(CHROMIUM_PATH).then(() => true, () => false);

interface Served {
  node: AspenNode;
  url: string;
  root: string;
  close: () => Promise<void>;
}

async function serveNode(): Promise<Served> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-console-txns-" });
  const random = (count: number) => crypto.getRandomValues(new Uint8Array(count));
  const created = await createCredentials(random, createClusterCa);
  await Deno.writeTextFile(`${dir}/cluster.json`, formatCredentials(created.credentials));
  const config = loadConfig({
    flags: {
      "data-dir": dir,
      "peer-listen": "127.0.0.1:0",
      "http-listen": "127.0.0.1:0",
      "sharding-enabled": "true",
      "sharding-num-shards": String(SHARDS),
    },
    env: {},
    file: null,
  });
  const logger = new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now });
  const runtime = {
    logger,
    nowMs: () => performance.now(),
    wallMs: Date.now,
    randomBytes: random,
    version: "test",
    seed: 11,
  };
  const node = await startNode(config, runtime);
  const app = createNodeApp(node, runtime);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  return {
    node,
    url: `http://127.0.0.1:${server.addr.port}`,
    root: created.rootToken,
    close: async () => {
      await server.shutdown();
      await node.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function call(served: Served, method: string, path: string, body?: unknown) {
  const response = await fetch(`${served.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${served.root}`, "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

async function waitForLeaders(served: Served): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const { json } = await call(served, "GET", "/v1/cluster/status");
    const shards = json.shards as { leader: number | null }[] | undefined;
    if (shards !== undefined && shards.every((shard) => shard.leader !== null)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("no leaders");
}

/** One key on each of two different shards, named `prefix` + a number. */
function keysOnTwoShards(prefix: string): string[] {
  const byShard = new Map<number, string>();
  for (let i = 0; byShard.size < 2; i++) {
    const key = `${prefix}${i}`;
    byShard.set(shardForKey(key, SHARDS), byShard.get(shardForKey(key, SHARDS)) ?? key);
  }
  return [...byShard.values()].sort();
}

/** A cross-shard txn through the API; returns its id. */
async function crossShardTxn(served: Served, prefix: string): Promise<string> {
  const success = keysOnTwoShards(prefix).map((key) => ({ put: { key, value: "v" } }));
  const { status, json } = await call(served, "POST", "/v1/txn", {
    compare: [],
    success,
    failure: [],
  });
  equal(status, 200, JSON.stringify(json));
  ok(typeof json.txnId === "string", "a cross-shard reply names its txn");
  return json.txnId;
}

/** Prepares a txn on both shards of its keys, as a coordinator would, and stops there. */
async function plantPending(served: Served, keys: readonly string[]): Promise<number[]> {
  const shards = keys.map((key) => shardForKey(key, SHARDS));
  const participants = [...new Set(shards)].sort((a, b) => a - b);
  for (const shard of participants) {
    const result = await served.node.service.run<ApplyResult>(shard, {
      kind: "propose",
      command: {
        type: "txnPrepare",
        txnId: PLANTED_TXN,
        shard,
        home: shardForKey(keys[0]!, SHARDS),
        participants,
        deadlineMs: Date.now() + 600_000,
        compare: [],
        reads: [],
        success: keys.filter((_, i) => shards[i] === shard).map((key) => ({
          type: "put" as const,
          key,
          value: "planted",
          lease: 0,
          prevKv: false,
        })),
        failure: [],
        leases: [],
      },
    });
    ok(result.type === "txnPrepared" && result.ok, JSON.stringify(result));
  }
  return participants;
}

Deno.test({
  name: "the console's Transactions page shows pending and committed cross-shard txns",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const served = await serveNode();
    const browser = await launchBrowser();
    try {
      await waitForLeaders(served);
      const committed = await crossShardTxn(served, "console-xs/a");
      const watched = await openPage(browser, "light");
      const page = watched.page;
      await t.step("sign in and open Transactions: nothing is pending", async () => {
        await page.goto(`${served.url}/`);
        await page.fill("#token", served.root);
        await page.click("button[type=submit]");
        await page.getByRole("link", { name: "Transactions" }).click();
        await page.getByText("No cross-shard transaction is pending").waitFor();
      });
      await t.step("a planted pending txn shows with a pending receipt per shard", async () => {
        const participants = await plantPending(served, keysOnTwoShards("console-xs/p"));
        const row = page.locator(`tr[data-txn="${PLANTED_TXN}"]`);
        await row.waitFor();
        for (const shard of participants) {
          await row.locator(`[data-shard="${shard}"][data-receipt=pending]`).waitFor();
          const intents = page.locator(
            `.intents-table tr[data-shard="${shard}"] [data-field=intents]`,
          );
          await intents.getByText("1", { exact: true }).waitFor();
        }
        ok((await row.locator("[data-field=deadline]").textContent())?.startsWith("deadline in"));
        await screenshot(page, "txns-pending-light");
      });
      await t.step("a committed txn shows under Latest committed with receipts", async () => {
        await page.getByRole("button", { name: "Latest committed" }).click();
        const row = page.locator(`tr[data-txn="${committed}"]`);
        await row.waitFor();
        equal(await row.locator("[data-receipt=committed]").count(), 2);
        equal(await row.locator("[data-receipt]:not([data-receipt=committed])").count(), 0);
      });
      await t.step("commits made while the page is open show as a rate", async () => {
        for (let i = 0; i < 3; i++) await crossShardTxn(served, `console-xs/r${i}-`);
        const rate = page.locator("[data-field=xs-commits]");
        await page.waitForFunction(
          () => {
            const text = document.querySelector("[data-field=xs-commits]")?.textContent ?? "";
            return Number(text) > 0;
          },
          undefined,
          { timeout: 10_000 },
        );
        ok(Number(await rate.textContent()) > 0);
        await screenshot(page, "txns-committed-light");
        equal(watched.errors.join("\n"), "");
      });
      await watched.context.close();
    } finally {
      await browser.close();
      await served.close();
    }
  },
});
