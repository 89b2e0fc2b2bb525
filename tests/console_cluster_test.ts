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
 * active; kills a node with SIGKILL and sees it marked down with new leaders, offered
 * "Replace…" instead of "Drain…", and a confirmed replace shows the server's 409 in the dialog;
 * and the browser logs no errors beyond the failed requests the refusals and the kill provoke.
 *
 * A second test runs 4 nodes: node 4 killed is marked down, "Replace…" confirmed calls the
 * replace route and the member goes draining and then removed, its replicas rebuilt on nodes
 * 1-3.
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
      let victim = 0;
      await t.step("a killed node is shown down and its shards get new leaders", async () => {
        await page.getByRole("link", { name: "Overview" }).click();
        const before = await statusVia(1)();
        victim = before.shards.map((shard) =>
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
        watched.errors.length = 0;
      });
      await t.step("replacing it without spare capacity shows the 409", async () => {
        const row = page.locator(`tr[data-member="${victim}"]`);
        await row.getByText("Down").waitFor({ timeout: 20_000 });
        equal(await row.getByRole("button", { name: `Drain node ${victim}` }).count(), 0);
        await page.getByRole("button", { name: `Replace node ${victim}` }).click();
        const dialog = page.getByRole("dialog", { name: `Replace node ${victim}?` });
        await dialog.getByRole("button", { name: "Replace node", exact: true }).click();
        const alert = dialog.getByRole("alert");
        await alert.waitFor();
        const message = await alert.textContent() ?? "";
        ok(
          /healthy node\(s\) would remain but the replication factor is 3/.test(message),
          message,
        );
        await dialog.getByRole("button", { name: "Cancel" }).click();
        await dialog.waitFor({ state: "detached" });
        const after = await statusVia(1)();
        deepEqual(after.members?.map((member) => member.state), ["active", "active", "active"]);
        deepEqual(watched.errors.map((text) => /status of 409/.test(text)), [true]);
      });
      await watched.context.close();
    } finally {
      await browser.close();
      await close();
    }
  },
});

Deno.test({
  name: "the console replaces a dead node of a real 4-node cluster",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { cluster, close } = await launchTestCluster({ nodes: 4, shards: 4 });
    const browser = await launchBrowser();
    try {
      await cluster.waitForLeaders();
      const api = new AspenClient({ endpoints: [cluster.url(1)], token: cluster.record.rootToken });
      const status = () => api.request<Status>({ method: "GET", path: "/v1/cluster/status" });
      const watched = await openPage(browser, "light");
      const page = watched.page;
      await page.goto(`${cluster.url(1)}/`);
      await page.fill("#token", cluster.record.rootToken);
      await page.click("button[type=submit]");
      const row = page.locator('tr[data-member="4"]');
      await row.locator("[data-field=state]").getByText("Active").waitFor({ timeout: 20_000 });
      // Up: drained, never replaced.
      await page.getByRole("button", { name: "Drain node 4" }).waitFor();
      equal(await page.getByRole("button", { name: "Replace node 4" }).count(), 0);
      await cluster.kill(4, "SIGKILL");
      await row.getByText("Down").waitFor({ timeout: 20_000 });
      equal(await page.getByRole("button", { name: "Drain node 4" }).count(), 0);
      await page.getByRole("button", { name: "Replace node 4" }).click();
      const dialog = page.getByRole("dialog", { name: "Replace node 4?" });
      await dialog.getByText("rebuilds each of its replicas").waitFor();
      await screenshot(page, "cluster-replace-confirm-light");
      // The answering node counts a peer down about a second after it fell silent: a 409
      // conflict ("it is up") until then is shown in the dialog and confirmed again.
      let isAccepted = false;
      for (let attempt = 0; attempt < 20 && !isAccepted; attempt++) {
        await dialog.getByRole("button", { name: "Replace node", exact: true }).click();
        const outcome = await Promise.race([
          dialog.waitFor({ state: "detached" }).then(() => "accepted"),
          dialog.getByRole("alert").waitFor().then(() => "refused"),
        ]);
        isAccepted = outcome === "accepted";
        if (!isAccepted) {
          const message = await dialog.getByRole("alert").textContent() ?? "";
          ok(/Cannot replace node 4: it is up/.test(message), message);
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
      ok(isAccepted, "the replace was accepted");
      await page.locator("#members").getByRole("status").getByText("Node 4 is being replaced")
        .waitFor();
      await row.locator("[data-field=state]").getByText("Removed").waitFor({ timeout: 60_000 });
      await screenshot(page, "cluster-replaced-light");
      equal(await page.getByRole("button", { name: "Replace node 4" }).count(), 0);
      const after = await status();
      deepEqual(after.members?.map((member) => member.state), [
        "active",
        "active",
        "active",
        "removed",
      ]);
      const unexpected = watched.errors.filter((text) => !/status of (50\d|409)/.test(text));
      deepEqual(unexpected, []);
      await watched.context.close();
    } finally {
      await browser.close();
      await close();
    }
  },
});
