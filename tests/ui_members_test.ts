/**
 * The members panel's pure logic (ui/app/members.ts) and the status fields it reads: the
 * `members` and `learners` of `/v1/cluster/status` survive parseClusterStatus(), are left out
 * for servers that predate them, and malformed ones are refused naming the field; the rows
 * are sorted by id with each member's learners, only active members that are up may be
 * drained and only active or joining members that are down replaced; the
 * summary, labels and the remove answer's reading. Table-driven where the inputs vary.
 */
import { deepEqual, equal, throws } from "node:assert/strict";
import type { ClusterStatus, MemberStatus } from "../api/mod.ts";
import { JsonFormatError } from "../ui/app/json_read.ts";
import {
  drainLoad,
  drainNotice,
  httpAddressLabel,
  membersSummary,
  memberStateLabel,
  membersView,
  parseRemoveNodeResponse,
} from "../ui/app/members.ts";
import { parseClusterStatus } from "../ui/app/status.ts";
import { FakeCluster } from "./fixtures/ui_cluster.ts";

function member(id: number, state: MemberStatus["state"], replicas = 4): MemberStatus {
  return {
    id,
    peerAddress: `127.0.0.1:${7000 + id}`,
    httpAddress: `127.0.0.1:${8000 + id}`,
    state,
    replicas,
    leaders: 1,
  };
}

function statusWith(fields: Partial<ClusterStatus>): ClusterStatus {
  const cluster = new FakeCluster({ nodeCount: 3, shardCount: 4, replicationFactor: 3 });
  cluster.tick();
  return { ...cluster.status(), ...fields };
}

Deno.test("parseClusterStatus() keeps members and learners", () => {
  const status = statusWith({
    members: [member(1, "active"), member(4, "joining", 1), member(3, "draining", 2)],
    learners: [{ shard: 2, node: 4, matchIndex: 10, lag: 30 }],
  });
  deepEqual(parseClusterStatus(JSON.parse(JSON.stringify(status))), status);
});

Deno.test("parseClusterStatus() leaves members out for an older server, keeps null", () => {
  const older = parseClusterStatus(JSON.parse(JSON.stringify(statusWith({}))));
  equal("members" in older, false);
  equal("learners" in older, false);
  const unknown = parseClusterStatus(JSON.parse(JSON.stringify(statusWith({ members: null }))));
  equal(unknown.members, null);
});

Deno.test("parseClusterStatus() refuses malformed members and learners", async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["members not a list", { members: {} }, /members/],
    [
      "a bad state",
      { members: [{ ...member(1, "active"), state: "gone" }] },
      /members\[0\]\.state/,
    ],
    ["negative replicas", { members: [{ ...member(1, "active"), replicas: -1 }] }, /replicas/],
    ["no peer address", { members: [{ ...member(1, "active"), peerAddress: 7 }] }, /peerAddress/],
    ["a learner without lag", { learners: [{ shard: 1, node: 2, matchIndex: 3 }] }, /lag/],
  ];
  for (const [name, fields, pattern] of cases) {
    await t.step(name, () => {
      const body = { ...JSON.parse(JSON.stringify(statusWith({}))), ...fields };
      throws(() => parseClusterStatus(body), (error: unknown) => {
        return error instanceof JsonFormatError && pattern.test(error.message);
      });
    });
  }
});

Deno.test("membersView() sorts members, attaches their learners, drains only active ones", () => {
  const view = membersView(statusWith({
    members: [
      member(3, "draining"),
      member(1, "active"),
      member(4, "joining", 2),
      member(2, "removed", 0),
    ],
    learners: [
      { shard: 3, node: 4, matchIndex: 5, lag: 12 },
      { shard: 1, node: 4, matchIndex: 90, lag: 0 },
      { shard: 2, node: 1, matchIndex: 7, lag: 3 },
    ],
  }));
  if (view.kind !== "rows") throw new Error(`expected rows, got ${view.kind}`);
  deepEqual(view.rows.map((row) => row.member.id), [1, 2, 3, 4]);
  deepEqual(view.rows.map((row) => row.canDrain), [true, false, false, false]);
  deepEqual(view.rows.map((row) => row.canReplace), [false, false, false, false]);
  deepEqual(view.rows.map((row) => row.moving), [
    [{ shard: 2, lag: 3 }],
    [],
    [],
    [{ shard: 1, lag: 0 }, { shard: 3, lag: 12 }],
  ]);
});

Deno.test("membersView() offers drain for members that are up, replace for down ones", () => {
  const base = statusWith({});
  const nodes = [1, 2, 3, 4, 5].map((id) => ({
    ...base.nodes[0]!,
    id,
    status: id === 1 ? "up" as const : "down" as const,
  }));
  const view = membersView({
    ...base,
    nodes,
    members: [
      member(1, "active"),
      member(2, "active"),
      member(3, "joining"),
      member(4, "draining"),
      member(5, "removed", 0),
    ],
  });
  if (view.kind !== "rows") throw new Error(`expected rows, got ${view.kind}`);
  deepEqual(view.rows.map((row) => row.isDown), [false, true, true, true, true]);
  deepEqual(view.rows.map((row) => row.canDrain), [true, false, false, false, false]);
  deepEqual(view.rows.map((row) => row.canReplace), [false, true, true, false, false]);
});

Deno.test("membersView() tells an older server from an unknown record", () => {
  equal(membersView(statusWith({})).kind, "unreported");
  equal(membersView(statusWith({ members: null })).kind, "unknown");
  deepEqual(membersView(statusWith({ members: [] })), { kind: "rows", rows: [] });
});

Deno.test("membersSummary() counts members per state in lifecycle order", async (t) => {
  const cases: [string, MemberStatus[], string][] = [
    ["none", [], "no members"],
    ["all active", [member(1, "active"), member(2, "active"), member(3, "active")], "3 active"],
    [
      "mixed",
      [member(5, "removed"), member(1, "active"), member(4, "joining"), member(3, "draining")],
      "1 joining, 1 active, 1 draining, 1 removed",
    ],
  ];
  for (const [name, members, expected] of cases) {
    await t.step(name, () => {
      const view = membersView(statusWith({ members }));
      if (view.kind !== "rows") throw new Error("expected rows");
      equal(membersSummary(view.rows), expected);
    });
  }
});

Deno.test("memberStateLabel() and httpAddressLabel() say what they show", () => {
  deepEqual(
    (["joining", "active", "draining", "removed"] as const).map(memberStateLabel),
    ["Joining", "Active", "Draining", "Removed"],
  );
  equal(httpAddressLabel(member(2, "active")), "127.0.0.1:8002");
  equal(httpAddressLabel({ ...member(2, "joining"), httpAddress: "" }), "not reported yet");
});

Deno.test("parseRemoveNodeResponse() and drainNotice() read the remove answer", () => {
  const started = parseRemoveNodeResponse({ node: 3, state: "draining", previousState: "active" });
  deepEqual(started, { node: 3, state: "draining", previousState: "active" });
  equal(
    drainNotice(started),
    "Node 3 is draining: its replicas move to other nodes, then it is removed",
  );
  equal(
    drainNotice({ node: 3, state: "draining", previousState: "draining" }),
    "Node 3 was draining already",
  );
  equal(
    drainNotice(started, "replace"),
    "Node 3 is being replaced: its replicas are rebuilt on the other nodes from the survivors, " +
      "then it is removed",
  );
  throws(
    () => parseRemoveNodeResponse({ node: 3, state: "leaving", previousState: "active" }),
    /state/,
  );
  throws(() => parseRemoveNodeResponse({ state: "draining", previousState: "active" }), /node/);
});

Deno.test("drainLoad() counts replicas and leaderships in words", async (t) => {
  const cases: [string, number, number, string][] = [
    ["plural", 4, 2, "holds 4 replicas and leads 2 shards"],
    ["singular", 1, 1, "holds 1 replica and leads 1 shard"],
    ["none", 0, 0, "holds 0 replicas and leads 0 shards"],
    ["thousands", 1200, 0, "holds 1,200 replicas and leads 0 shards"],
  ];
  for (const [name, replicas, leaders, expected] of cases) {
    await t.step(name, () => {
      equal(drainLoad({ ...member(1, "active"), replicas, leaders }), expected);
    });
  }
});
