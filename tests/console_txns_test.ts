/// <reference lib="dom" />
/**
 * The console's Transactions page in a real browser (Debian's chromium through playwright-core)
 * against a real node: started in process with SHARDS shards (real SQLite, real Raft) and
 * served on a loopback port, so that the test can also plant a transaction the way a
 * coordinator that stopped after its prepares leaves one (raw txnPrepare proposals).
 *
 * Checks: with nothing pending the page says so; a planted pending txn shows with a pending
 * receipt for each participant shard and its deadline, says it is committed by its votes (all
 * its participants prepared), and its intents show per shard; a
 * cross-shard txn run through the API shows under "Latest committed" with a committed receipt
 * per shard; cross-shard commits made while the page is open show as a rate; the browser logs
 * no error. Skipped without /usr/bin/chromium. Screenshots go to test-output/ui/txns-*.png.
 */
import { equal, ok } from "node:assert/strict";
import type { AspenNode } from "../server/node/mod.ts";
import { type ApplyResult, shardForKey } from "../shard/mod.ts";
import { startInProcessNode } from "./_in_process_node.ts";
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

/** A real node in process, its app served on a loopback port for the browser. */
async function serveNode(): Promise<Served> {
  const started = await startInProcessNode({ shards: SHARDS, waitForLeaders: false });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    started.app.fetch,
  );
  return {
    node: started.node,
    url: `http://127.0.0.1:${server.addr.port}`,
    root: started.root,
    close: async () => {
      await server.shutdown();
      await started.close();
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
        // Every participant prepared: committed by its votes while its record waits.
        const status = row.locator("[data-field=status]");
        equal(await status.getAttribute("data-outcome"), "committed");
        equal(await status.textContent(), "pending, committed by its votes");
        await row.getByText(`${participants[0]} → pending, prepared`).waitFor();
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
