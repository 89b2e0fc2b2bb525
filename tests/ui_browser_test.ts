/// <reference lib="dom" />
/**
 * The web console in a real browser (Debian's chromium driven by playwright-core) against a
 * stand-in node (tests/fixtures/ui_standin.ts): a real HTTP server on 127.0.0.1 that serves the
 * committed console bundle and answers the API from a fake 3-node, 4-shard cluster.
 *
 * Checks, in order: a wrong token is refused and the right one signs in; every shard's leader,
 * term, indexes and replica roles on screen equal the status the stand-in served (frozen while
 * compared), and the rates equal the fake cluster's known rates; the key browser pages through
 * a scan, and its put and delete (after confirmation) reach the stand-in; the shards page lists
 * the tenants the stand-in serves (name, shard, keys, bytes); a leadership transfer reaches it
 * and the new leader is shown; the Members panel shows each member's state, replicas, leaders
 * and the learners moving onto it, and "Drain…" sends nothing when cancelled and, confirmed,
 * reaches the stand-in and the member is shown draining; a killed node is shown down with its
 * shards' new leaders and an event; storage alarms raised on a node show in a banner, as a
 * badge on its row and as events, and go when they clear; when the node stops answering the
 * stale banner appears over the kept data, and goes when it answers again; the browser logs no
 * errors beyond the network failures each step provokes. Screenshots of every page, light and
 * dark, go to test-output/ui/.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Page } from "playwright-core";
import type { ClusterStatus } from "../api/mod.ts";
import { formatBytes, formatCompact, formatInteger, formatPercent } from "../ui/app/format.ts";
import { SCAN_PAGE_KEYS } from "../ui/app/limits.ts";
import { launchBrowser, openPage, screenshot, type WatchedPage } from "./fixtures/ui_browser.ts";
import { FakeCluster, fakeConflictsPerSecond, fakeTxnsPerSecond } from "./fixtures/ui_cluster.ts";
import { StandIn } from "./fixtures/ui_standin.ts";

const TOKEN = "console-test-token";
const SEEDED_KEYS = 60;

/** Browser console errors that a step provokes on purpose, by step. */
const EXPECTED_401 = /status of 401/;
const EXPECTED_503 = /status of 503/;
const EXPECTED_OUTAGE = /net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)/;

function checkErrors(watched: WatchedPage, allowed: RegExp | null): void {
  const unexpected = watched.errors.filter((text) => allowed === null || !allowed.test(text));
  deepEqual(unexpected, [], "the browser logged errors");
  watched.errors.length = 0;
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.fill("#token", token);
  await page.click("button[type=submit]");
}

/** What the overview's placement grid should show for `status`. */
function expectedPlacement(status: ClusterStatus) {
  return status.shards.map((shard) => ({
    shard: String(shard.id),
    term: formatInteger(shard.term),
    leader: shard.leader === null ? "None" : `Node ${shard.leader}`,
    cells: status.nodes.map((node) => {
      const replica = shard.replicas.find((entry) => entry.node === node.id);
      if (replica === undefined) return `${node.id}:·`;
      if (replica.status === "down") return `${node.id}:Down`;
      return `${node.id}:${replica.role[0]!.toUpperCase()}${replica.role.slice(1)}`;
    }),
  }));
}

function readPlacement() {
  return [...document.querySelectorAll(".placement tbody tr")].map((row) => ({
    shard: (row as HTMLElement).dataset.shard,
    term: row.querySelector("[data-field=term]")?.textContent,
    leader: row.querySelector("[data-field=leader]")?.textContent,
    cells: [...row.querySelectorAll("td[data-node]")].map((cell) =>
      `${(cell as HTMLElement).dataset.node}:${cell.textContent}`
    ),
  }));
}

/** What the shards page should show for `status`. */
function expectedShardCards(status: ClusterStatus) {
  return status.shards.map((shard) => ({
    shard: String(shard.id),
    leader: shard.leader === null ? "No leader" : `Leader: node ${shard.leader}`,
    term: formatInteger(shard.term),
    commitIndex: formatInteger(shard.commitIndex),
    appliedIndex: formatInteger(shard.appliedIndex),
    lastIndex: formatInteger(shard.lastIndex),
    replicas: [...shard.replicas].sort((a, b) => a.node - b.node).map((replica) =>
      `${replica.node}:${formatInteger(replica.matchIndex)}:${replica.lag}`
    ),
  }));
}

function readShardCards() {
  const field = (root: Element, name: string) =>
    root.querySelector(`[data-field=${name}]`)?.textContent;
  return [...document.querySelectorAll(".shard-card")].map((card) => ({
    shard: (card as HTMLElement).dataset.shard,
    leader: field(card, "leader"),
    term: field(card, "term"),
    commitIndex: field(card, "commitIndex"),
    appliedIndex: field(card, "appliedIndex"),
    lastIndex: field(card, "lastIndex"),
    replicas: [...card.querySelectorAll("tbody tr")].map((row) =>
      `${(row as HTMLElement).dataset.node}:${field(row, "matchIndex")}:` +
      row.querySelector(".lag-text")?.textContent
    ),
  }));
}

/** Status polls a screen may take to show a frozen status before the test fails. */
const POLLS_TO_CONVERGE_MAX = 8;

/**
 * Freezes the stand-in's status and waits, one status poll at a time, until `read` on the page
 * gives `expected(status)`; otherwise fails with the difference. (The page runs under the
 * console's content security policy, which forbids string evaluation, so `read` is passed to
 * the page as a function.)
 */
async function expectScreen<T>(
  page: Page,
  standin: StandIn,
  read: () => T,
  expected: (status: ClusterStatus) => T,
): Promise<ClusterStatus> {
  standin.freeze(true);
  try {
    // From here on the stand-in serves this status to every poll, so the screen converges on it.
    const status = standin.lastStatus!;
    const want = expected(status);
    for (let poll = 0; poll < POLLS_TO_CONVERGE_MAX; poll++) {
      if (JSON.stringify(await page.evaluate(read)) === JSON.stringify(want)) return status;
      await page.waitForResponse((response) => response.url().endsWith("/v1/cluster/status"));
    }
    deepEqual(await page.evaluate(read), want);
    return status;
  } finally {
    standin.freeze(false);
  }
}

Deno.test("the console in a real browser against a stand-in node", async (t) => {
  const cluster = new FakeCluster({
    nodeCount: 3,
    shardCount: 4,
    replicationFactor: 3,
    hasMembers: true,
  });
  const standin = new StandIn(cluster, TOKEN);
  for (let i = 0; i < SEEDED_KEYS; i++) {
    const plan = i % 3 === 0 ? "pro" : "free";
    standin.seed(
      `users/${String(i).padStart(3, "0")}`,
      JSON.stringify({ name: `user ${i}`, plan }),
    );
  }
  const browser = await launchBrowser();
  try {
    const light = await openPage(browser, "light");
    const { page } = light;

    await t.step("a wrong token is refused, the right one signs in", async () => {
      await page.goto(standin.url);
      await page.getByLabel("Access token").waitFor();
      await screenshot(page, "signin-light");
      await signIn(page, "not-the-token");
      await page.getByRole("alert").getByText("The node rejected this token").waitFor();
      await screenshot(page, "signin-refused-light");
      checkErrors(light, EXPECTED_401);
      await signIn(page, TOKEN);
      await page.locator(".stats").waitFor();
      equal(await page.evaluate(() => sessionStorage.getItem("aspen.console.token")), TOKEN);
    });

    await t.step("a failing status before any data gives an error state", async () => {
      standin.isStatusFailing = true;
      await page.reload();
      const state = page.getByRole("alert").filter({ hasText: "Cannot load the cluster status" });
      await state.getByText("no leader reachable").waitFor();
      equal(await page.locator("[data-connection]").getAttribute("data-connection"), "error");
      await screenshot(page, "overview-error-light");
      standin.isStatusFailing = false;
      await page.locator(".stats").waitFor();
      checkErrors(light, EXPECTED_503);
    });

    await t.step("the console is usable from the keyboard", async () => {
      await page.locator("body").focus();
      const focusedText = () => page.evaluate(() => document.activeElement?.textContent ?? "");
      for (let i = 0; i < 12 && await focusedText() !== "Shards"; i++) {
        await page.keyboard.press("Tab");
      }
      equal(await focusedText(), "Shards", "Tab reaches the Shards link");
      await page.keyboard.press("Enter");
      await page.locator(".shard-card").first().waitFor();
      equal(new URL(page.url()).hash, "#/shards");
      const transfer = page.getByRole("button", { name: "Transfer leadership of shard 1" });
      await transfer.focus();
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog", { name: "Transfer leadership of shard 1" });
      await dialog.waitFor();
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      deepEqual(standin.log.transfers, [], "Escape cancels without a request");
      await page.getByRole("link", { name: "Overview" }).click();
      checkErrors(light, null);
    });

    await t.step("the overview shows the served leaders, terms and roles", async () => {
      await expectScreen(page, standin, readPlacement, expectedPlacement);
      await page.locator(".events li").first().waitFor();
      await page.locator(".legend li").first().waitFor();
      await screenshot(page, "overview-light");
      checkErrors(light, null);
    });

    await t.step("the shards page shows the served indexes, lags and rates", async () => {
      await page.getByRole("link", { name: "Shards" }).click();
      await expectScreen(page, standin, readShardCards, expectedShardCards);
      for (const id of [0, 1, 2, 3]) {
        const card = page.locator(`.shard-card[data-shard="${id}"]`);
        const txns = formatCompact(fakeTxnsPerSecond(id));
        await card.locator("[data-field=txns]").getByText(txns, { exact: true }).waitFor();
        const rate = formatPercent(fakeConflictsPerSecond(id) / fakeTxnsPerSecond(id));
        equal(await card.locator("[data-field=conflictRate]").textContent(), rate);
      }
      await screenshot(page, "shards-light");
      checkErrors(light, null);
    });

    await t.step("the shards page lists the tenants with their shard, keys and bytes", async () => {
      standin.tenants = [
        { name: "acme", shard: 2, keys: 12_345, bytes: 3 * 1024 * 1024 },
        { name: "globex", shard: 0, keys: 0, bytes: 0 },
      ];
      const table = page.getByRole("table", { name: "Tenants" });
      await table.locator('[data-tenant="globex"]').waitFor();
      const rows = await table.locator("tbody tr").evaluateAll((items) =>
        items.map((row) => [...row.children].map((cell) => cell.textContent?.trim() ?? ""))
      );
      deepEqual(rows, [
        ["acme", "2", formatInteger(12_345), formatBytes(3 * 1024 * 1024)],
        ["globex", "0", "0", formatBytes(0)],
      ]);
      await screenshot(page, "shards-tenants-light");
      checkErrors(light, null);
    });

    await t.step("a leadership transfer reaches the node and the new leader is shown", async () => {
      const leader = cluster.leaders()[0]!;
      const target = leader === 2 ? 3 : 2;
      await page.getByRole("button", { name: "Transfer leadership of shard 0" }).click();
      const dialog = page.getByRole("dialog", { name: "Transfer leadership of shard 0" });
      await dialog.getByLabel("New leader").selectOption(String(target));
      await screenshot(page, "transfer-dialog-light");
      await dialog.getByRole("button", { name: "Transfer leadership" }).click();
      await page.getByRole("status").getByText(`leadership moved to node ${target}`).waitFor();
      deepEqual(standin.log.transfers, [{ shard: 0, to: target }]);
      const card = page.locator('.shard-card[data-shard="0"]');
      await card.locator("[data-field=leader]").getByText(`Leader: node ${target}`).waitFor();
      checkErrors(light, null);
    });

    await t.step(
      "the members panel lists members, learners, and drains after a confirm",
      async () => {
        cluster.learners = [{ shard: 1, node: 1, matchIndex: 90, lag: 12 }];
        await page.getByRole("link", { name: "Overview" }).click();
        const moving = page.locator('tr[data-member="1"] [data-field=moving]');
        await moving.getByText("shard 1: 12 entries behind").waitFor();
        const served = standin.lastStatus?.members ?? [];
        deepEqual(served.map((member) => member.state), ["active", "active", "active"]);
        for (const member of served) {
          const row = page.locator(`tr[data-member="${member.id}"]`);
          equal(await row.locator("[data-field=state]").textContent(), "Active");
          equal(await row.locator("[data-field=replicas]").textContent(), String(member.replicas));
          equal(await row.locator("[data-field=leaders]").textContent(), String(member.leaders));
        }
        await page.getByRole("button", { name: "Drain node 3" }).click();
        const dialog = page.getByRole("dialog", { name: "Drain node 3?" });
        await dialog.getByRole("button", { name: "Cancel" }).click();
        await dialog.waitFor({ state: "detached" });
        deepEqual(standin.log.removals, [], "Cancel sends nothing");
        await page.getByRole("button", { name: "Drain node 3" }).click();
        await dialog.getByRole("button", { name: "Drain node", exact: true }).click();
        await page.locator("#members").getByRole("status").getByText("Node 3 is draining")
          .waitFor();
        deepEqual(standin.log.removals, [3]);
        const state = page.locator('tr[data-member="3"] [data-field=state]');
        await state.getByText("Draining").waitFor();
        equal(await page.getByRole("button", { name: "Drain node 3" }).count(), 0);
        await screenshot(page, "members-draining-light");
        cluster.learners = [];
        checkErrors(light, null);
      },
    );

    await t.step("the metrics page draws a line per shard", async () => {
      await page.getByRole("link", { name: "Metrics" }).click();
      const lines = page.locator('[data-metric="optimisticTxnsPerSecond"] path.chart-line');
      await page.waitForFunction(() => {
        const path = document.querySelector('[data-metric="optimisticTxnsPerSecond"] path');
        return (path?.getAttribute("d") ?? "").includes("L");
      });
      equal(await lines.count(), 4);
      await screenshot(page, "metrics-light");
      checkErrors(light, null);
    });

    await t.step("the key browser pages, puts and deletes through the API", async () => {
      await page.getByRole("link", { name: "Keys" }).click();
      const summary = page.locator(".pager [role=status]");
      await summary.getByText(`Keys 1–${SCAN_PAGE_KEYS} of ${SEEDED_KEYS}`).waitFor();
      await page.getByRole("button", { name: "Next" }).click();
      await summary.getByText(
        `Keys ${SCAN_PAGE_KEYS + 1}–${2 * SCAN_PAGE_KEYS} of ${SEEDED_KEYS} in the cluster`,
      ).waitFor();
      await page.getByRole("button", { name: "Previous" }).click();
      await summary.getByText(`Keys 1–${SCAN_PAGE_KEYS} of`).waitFor();
      await page.getByLabel("Key prefix").fill("users/01");
      await page.getByRole("button", { name: "Scan" }).click();
      await summary.getByText('Keys 1–10 of 10 with prefix "users/01"').waitFor();
      await page.getByRole("button", { name: "users/013" }).click();
      await page.locator(".key-details [data-field=value]").getByText("user 13").waitFor();
      await screenshot(page, "keys-light");

      const key = "console/greeting?lang=en&x=1 #2";
      await page.getByRole("button", { name: "New key" }).click();
      await page.getByRole("textbox", { name: "Key", exact: true }).fill(key);
      await page.getByLabel("Value").fill("hello from the console");
      await page.getByRole("button", { name: "Put…" }).click();
      const confirm = page.getByRole("dialog", { name: "Put this key?" });
      await confirm.waitFor();
      await screenshot(page, "keys-put-confirm-light");
      equal(standin.log.puts.length, 0, "nothing is written before the confirmation");
      await confirm.getByRole("button", { name: "Put key" }).click();
      await page.getByText(`Put "${key}": version 1`).waitFor();
      deepEqual(standin.log.puts, [{ key, value: "hello from the console" }]);
      equal(standin.keys.get(key)?.value, "hello from the console");
      await page.locator(".key-details [data-field=version]").getByText("1").waitFor();

      await page.getByRole("button", { name: "Delete…" }).click();
      const remove = page.getByRole("dialog", { name: "Delete this key?" });
      await remove.getByRole("button", { name: "Delete key" }).click();
      await page.getByText(`Deleted "${key}"`).waitFor();
      deepEqual(standin.log.deletes, [key]);
      equal(standin.keys.has(key), false);
      checkErrors(light, null);
    });

    await t.step("a killed node is shown down, with new leaders and an event", async () => {
      await page.getByRole("link", { name: "Overview" }).click();
      const led = cluster.leaders().flatMap((leader, shard) => leader === 3 ? [shard] : []);
      ok(led.length > 0, "node 3 leads a shard before it is killed");
      cluster.killNode(3);
      const status = await expectScreen(page, standin, readPlacement, expectedPlacement);
      ok(status.shards.every((shard) => shard.leader !== 3 && shard.leader !== null));
      const row = page.locator('tr[data-node="3"] [data-field=status]');
      equal(await row.textContent(), "Down");
      await page.locator(".events").getByText("Node 3 is down").waitFor();
      for (const shard of led) {
        const leader = status.shards[shard]!.leader;
        const text = `Shard ${shard}: node ${leader} is leader in term`;
        await page.locator(".events").getByText(text).waitFor();
      }
      match(await page.locator("[data-field=nodes-up]").textContent() ?? "", /^2 \/ 3$/);
      await screenshot(page, "overview-node-down-light");
      checkErrors(light, null);
    });

    await t.step(
      "a storage alarm shows as a banner, a badge and an event until cleared",
      async () => {
        const reserve = 'the data disk of "/data" has 3.0 MiB free, below the reserve of 64.0 MiB';
        cluster.raiseAlarm(2, { type: "no_space", message: reserve });
        cluster.raiseAlarm(2, {
          type: "no_space",
          shard: 1,
          message: "Shard 1 cannot write (persist failed 3 times, retrying): disk is full",
        });
        const banner = page.locator("[data-banner=alarm]");
        await banner.waitFor();
        deepEqual(await banner.locator("[data-field=place]").allTextContents(), [
          "Node 2",
          "Node 2 · shard 1",
        ]);
        match(await banner.textContent() ?? "", /below the reserve of 64\.0 MiB/);
        const badge = page.locator('tr[data-node="2"] [data-field=alarm]');
        equal(await badge.textContent(), "No space", "one badge per alarm type");
        equal(await page.locator('tr[data-node="1"] [data-field=alarm]').count(), 0);
        await page.locator(".events").getByText("Node 2 · shard 1: No space alarm: Shard 1")
          .waitFor();
        await screenshot(page, "overview-alarm-light");
        cluster.clearAlarms(2);
        await banner.waitFor({ state: "detached" });
        equal(await badge.count(), 0);
        await page.locator(".events").getByText("Node 2: No space alarm cleared").waitFor();
        checkErrors(light, null);
      },
    );

    await t.step("a node that stops answering gives the stale banner over kept data", async () => {
      await standin.stop();
      const banner = page.locator("[data-banner=stale]");
      await banner.waitFor();
      match(await banner.textContent() ?? "", /is not answering/);
      equal(await page.locator(".data").getAttribute("data-stale"), "true");
      equal(await page.locator(".placement tbody tr").count(), 4, "the last data stays");
      await screenshot(page, "overview-stale-light");
      standin.restart();
      await banner.waitFor({ state: "detached" });
      await page.locator("[data-connection=live]").waitFor();
      await page.locator(".events").getByText("answers again").waitFor();
      checkErrors(light, EXPECTED_OUTAGE);
    });
    await light.context.close();

    await t.step("dark: every page renders without errors", async () => {
      cluster.reviveNode(3);
      const dark = await openPage(browser, "dark");
      await dark.page.goto(standin.url);
      await dark.page.getByLabel("Access token").waitFor();
      await screenshot(dark.page, "signin-dark");
      await signIn(dark.page, TOKEN);
      // Two snapshots give rates; wait for them so the screenshot shows figures, not dashes.
      await dark.page.locator("[data-field=txns]").getByText(/\d/).waitFor();
      await screenshot(dark.page, "overview-dark");
      for (const name of ["Shards", "Metrics", "Keys"]) {
        await dark.page.getByRole("link", { name }).click();
        await dark.page.locator(".panel").first().waitFor();
        if (name === "Keys") await dark.page.getByRole("button", { name: "users/000" }).click();
        if (name === "Keys") await dark.page.locator(".key-details").waitFor();
        await screenshot(dark.page, `${name.toLowerCase()}-dark`);
      }
      checkErrors(dark, null);
      await dark.context.close();
    });
  } finally {
    await browser.close();
    await standin.stop();
  }
});
