/// <reference lib="dom" />
/**
 * The web console in a real browser (Debian's chromium through playwright-core) against a real
 * 3-node, 4-shard cluster of `aspen node` processes started by the test.
 *
 * Signs in with the cluster's root token; checks that every shard's leader, term and replica
 * roles, and every shard's commit / applied / last index, on screen equal
 * `/v1/cluster/status` (an idle cluster holds still, and the check re-reads both until they
 * agree or the polls run out); puts a key through the key browser and reads it back through
 * the API; the Members panel shows every member active with its replica and leader counts as
 * the status has them, and "Drain…" on a node, confirmed, shows the server's 409
 * insufficient_capacity message (3 nodes, replication factor 3) and leaves every member
 * active; kills a node with SIGKILL and sees it marked down with new leaders; and the browser
 * logs no errors beyond the failed requests the refused drain and the kill provoke.
 * Screenshots go to test-output/ui/cluster-*.png.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import type { Page } from "playwright-core";
import { AspenClient } from "../api/mod.ts";
import { launchBrowser, openPage, screenshot } from "./fixtures/ui_browser.ts";
import { launchTestCluster } from "./_cluster.ts";

const POLLS_MAX = 20;

interface Status {
  nodes: { id: number; status: string }[];
  shards: {
    id: number;
    leader: number | null;
    term: number;
    commitIndex: number;
    appliedIndex: number;
    lastIndex: number;
    replicas: { node: number; role: string; status: string }[];
  }[];
  members?: { id: number; state: string; replicas: number; leaders: number }[] | null;
}

function readGrid() {
  return [...document.querySelectorAll(".placement tbody tr")].map((row) => ({
    shard: (row as HTMLElement).dataset.shard,
    term: row.querySelector("[data-field=term]")?.textContent,
    leader: row.querySelector("[data-field=leader]")?.textContent,
  }));
}

function expectedGrid(status: Status) {
  return status.shards.map((shard) => ({
    shard: String(shard.id),
    term: shard.term.toLocaleString("en-US"),
    leader: shard.leader === null ? "None" : `Node ${shard.leader}`,
  }));
}

function readIndexes() {
  const field = (root: Element, name: string) =>
    root.querySelector(`[data-field=${name}]`)?.textContent?.replace(/,/g, "");
  return [...document.querySelectorAll(".shard-card")].map((card) => ({
    shard: (card as HTMLElement).dataset.shard,
    commit: field(card, "commitIndex"),
    applied: field(card, "appliedIndex"),
    last: field(card, "lastIndex"),
  }));
}

function expectedIndexes(status: Status) {
  return status.shards.map((shard) => ({
    shard: String(shard.id),
    commit: String(shard.commitIndex),
    applied: String(shard.appliedIndex),
    last: String(shard.lastIndex),
  }));
}

function readMembers() {
  const field = (root: Element, name: string) =>
    root.querySelector(`[data-field=${name}]`)?.textContent;
  return [...document.querySelectorAll(".members-table tbody tr")].map((row) => ({
    id: (row as HTMLElement).dataset.member,
    state: field(row, "state"),
    replicas: field(row, "replicas"),
    leaders: field(row, "leaders"),
  }));
}

function expectedMembers(status: Status) {
  const members = status.members;
  ok(members !== undefined && members !== null, "the status carries the members record");
  return members.map((member) => ({
    id: String(member.id),
    state: member.state === "active" ? "Active" : member.state,
    replicas: String(member.replicas),
    leaders: String(member.leaders),
  }));
}

/** Re-reads the status and the screen, one console poll apart, until they agree. */
async function agree<T>(
  page: Page,
  fetchStatus: () => Promise<Status>,
  read: () => T,
  expected: (status: Status) => T,
): Promise<Status> {
  let status = await fetchStatus();
  for (let poll = 0; poll < POLLS_MAX; poll++) {
    if (JSON.stringify(await page.evaluate(read)) === JSON.stringify(expected(status))) {
      return status;
    }
    await page.waitForResponse((response) => response.url().endsWith("/v1/cluster/status"));
    status = await fetchStatus();
  }
  deepEqual(await page.evaluate(read), expected(status));
  return status;
}

Deno.test({
  name: "the console against a real 3-node, 4-shard cluster",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const { cluster, close } = await launchTestCluster({ nodes: 3, shards: 4 });
    const browser = await launchBrowser();
    try {
      await cluster.waitForLeaders();
      const api = (ids: number[]) =>
        new AspenClient({
          endpoints: ids.map((id) => cluster.url(id)),
          token: cluster.record.rootToken,
        });
      const statusVia = (id: number) => () =>
        api([id]).request<Status>({ method: "GET", path: "/v1/cluster/status" });
      const watched = await openPage(browser, "light");
      const page = watched.page;
      await t.step("sign in with the root token", async () => {
        await page.goto(`${cluster.url(1)}/`);
        await page.fill("#token", cluster.record.rootToken);
        await page.click("button[type=submit]");
        await page.locator(".placement tbody tr").first().waitFor();
      });
      await t.step("leaders, terms and indexes on screen equal the status", async () => {
        await agree(page, statusVia(1), readGrid, expectedGrid);
        await screenshot(page, "cluster-overview-light");
        await page.getByRole("link", { name: "Shards" }).click();
        await agree(page, statusVia(1), readIndexes, expectedIndexes);
        await screenshot(page, "cluster-shards-light");
      });
      await t.step("a key put through the key browser reads back through the API", async () => {
        await page.getByRole("link", { name: "Keys" }).click();
        await page.getByRole("button", { name: "New key" }).click();
        await page.getByRole("textbox", { name: "Key", exact: true }).fill("console/hello");
        await page.getByLabel("Value").fill("from the browser");
        await page.getByRole("button", { name: "Put…" }).click();
        await page.getByRole("dialog", { name: "Put this key?" })
          .getByRole("button", { name: "Put key" }).click();
        await page.getByText('Put "console/hello": version 1').waitFor();
        const { kv } = await api([2, 3]).get("console/hello");
        equal(kv?.value, "from the browser");
        await screenshot(page, "cluster-keys-light");
        deepEqual(watched.errors, []);
      });
      await t.step("the members panel shows every member active with its replicas", async () => {
        await page.getByRole("link", { name: "Overview" }).click();
        const status = await agree(page, statusVia(1), readMembers, expectedMembers);
        // 3 nodes, 4 shards, replication factor 3: every node holds every shard.
        deepEqual(
          status.members?.map((member) => [member.id, member.state, member.replicas]),
          [[1, "active", 4], [2, "active", 4], [3, "active", 4]],
        );
        await screenshot(page, "cluster-members-light");
      });
      await t.step("a drain without spare capacity shows the 409 and changes nothing", async () => {
        await page.getByRole("button", { name: "Drain node 2" }).click();
        const dialog = page.getByRole("dialog", { name: "Drain node 2?" });
        await dialog.getByRole("button", { name: "Drain node", exact: true }).click();
        const alert = dialog.getByRole("alert");
        await alert.waitFor();
        const message = await alert.textContent() ?? "";
        ok(
          /Cannot remove node 2: 2 healthy node\(s\) would remain but the replication factor is 3/
            .test(message),
          message,
        );
        await screenshot(page, "cluster-drain-refused-light");
        await dialog.getByRole("button", { name: "Cancel" }).click();
        await dialog.waitFor({ state: "detached" });
        const after = await statusVia(3)();
        deepEqual(after.members?.map((member) => member.state), ["active", "active", "active"]);
        await page.locator('tr[data-member="2"] [data-field=state]').getByText("Active").waitFor();
        deepEqual(watched.errors.map((text) => /status of 409/.test(text)), [true]);
        watched.errors.length = 0;
      });
      await t.step("a killed node is shown down and its shards get new leaders", async () => {
        await page.getByRole("link", { name: "Overview" }).click();
        const before = await statusVia(1)();
        const victim = before.shards.map((shard) =>
          shard.leader
        ).find((leader) => leader !== null && leader !== 1) ?? 2;
        await cluster.kill(victim, "SIGKILL");
        await cluster.waitForLeaders(1, 20_000);
        const status = await agree(page, statusVia(1), readGrid, expectedGrid);
        ok(status.shards.every((shard) =>
          shard.leader !== victim && shard.leader !== null
        ));
        await page.locator(`tr[data-node="${victim}"] [data-field=status]`).getByText("Down")
          .waitFor({ timeout: 20_000 });
        await screenshot(page, "cluster-node-down-light");
        const unexpected = watched.errors.filter((text) => !/status of 50\d/.test(text));
        deepEqual(unexpected, []);
      });
      await watched.context.close();
    } finally {
      await browser.close();
      await close();
    }
  },
});
