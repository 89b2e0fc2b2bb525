/**
 * The members record (members.ts) and its runtime (membership.ts): seeding from the peers
 * list, the lifecycle's allowed and refused transitions, joins (retries are idempotent, ids
 * are never reused), the codec's checks on a corrupt value; and, over an in-memory shard 0
 * with a compare-and-swap, that the leader seeds the record once, every node fills in its own
 * HTTP address (two racing nodes both land), new members are dialed and removed ones refused;
 * a node dials the members of the record it saved last before its first read, and one that
 * cannot reach shard 0's leader learns the record (and so the leader's address) from its peers.
 */
import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { Logger } from "../log.ts";
import {
  formatMembersRecord,
  memberOf,
  MEMBERS_MAX,
  MEMBERS_META,
  parseMembersRecord,
  presentMemberIds,
  removedMemberIds,
  seedMembers,
  withJoiningMember,
  withMemberState,
} from "./members.ts";
import { Membership, type MembersStore } from "./membership.ts";
import { formatPlacement, parsePlacement, PLACEMENT_META } from "./placement_record.ts";

const PEERS = [
  { id: 3, address: "127.0.0.1:7003" },
  { id: 1, address: "127.0.0.1:7001" },
  { id: 2, address: "127.0.0.1:7002" },
];

function codeOf(error: unknown): string {
  return error instanceof AspenError ? error.code : String(error);
}

Deno.test("seedMembers() lists every peer active, sorted, with only its own HTTP address", () => {
  const record = seedMembers(PEERS, { id: 2, httpAddress: "127.0.0.1:8002" });
  equal(record.version, 1);
  deepEqual(record.members.map((member) => member.id), [1, 2, 3]);
  ok(record.members.every((member) => member.state === "active"));
  deepEqual(record.members.map((member) => member.httpAddress), ["", "127.0.0.1:8002", ""]);
  const alone = seedMembers([], { id: 7, peerAddress: "h:1", httpAddress: "h:2" });
  deepEqual(alone.members, [{ id: 7, peerAddress: "h:1", httpAddress: "h:2", state: "active" }]);
});

Deno.test("withMemberState() follows the lifecycle and refuses the rest", async (t) => {
  const seeded = seedMembers(PEERS, { id: 1, httpAddress: "" });
  await t.step("active -> draining -> removed, each a new version", () => {
    const draining = withMemberState(seeded, 3, "draining");
    equal(draining.version, 2);
    equal(memberOf(draining, 3)?.state, "draining");
    const removed = withMemberState(draining, 3, "removed");
    equal(removed.version, 3);
    deepEqual(presentMemberIds(removed), [1, 2]);
    deepEqual(removedMemberIds(removed), [3]);
  });
  await t.step("the same state is no change", () => {
    equal(withMemberState(seeded, 1, "active"), seeded);
  });
  await t.step("a removed node cannot come back, an active one cannot skip draining", () => {
    const removed = withMemberState(withMemberState(seeded, 3, "draining"), 3, "removed");
    throws(() => withMemberState(removed, 3, "active"), (e) => codeOf(e) === "conflict");
    throws(() => withMemberState(seeded, 2, "removed"), (e) => codeOf(e) === "conflict");
  });
  await t.step("an unknown node is node_not_found", () => {
    throws(() => withMemberState(seeded, 9, "draining"), (e) => codeOf(e) === "node_not_found");
  });
});

Deno.test("withJoiningMember() adds a joining member; a retry is no change", () => {
  const seeded = seedMembers(PEERS, { id: 1, httpAddress: "" });
  const joining = { id: 4, peerAddress: "127.0.0.1:7004", httpAddress: "127.0.0.1:8004" };
  const joined = withJoiningMember(seeded, joining);
  equal(memberOf(joined, 4)?.state, "joining");
  equal(withJoiningMember(joined, joining), joined);
  throws(
    () => withJoiningMember(joined, { ...joining, peerAddress: "127.0.0.1:9999" }),
    (e) => codeOf(e) === "conflict",
  );
  const removed = withMemberState(withMemberState(seeded, 3, "draining"), 3, "removed");
  throws(
    () => withJoiningMember(removed, { ...joining, id: 3, peerAddress: PEERS[0]!.address }),
    (e) => codeOf(e) === "conflict" && /never reused/.test((e as Error).message),
  );
});

Deno.test("withJoiningMember() refuses a member past MEMBERS_MAX", () => {
  const peers = Array.from({ length: MEMBERS_MAX }, (_, i) => ({ id: i + 1, address: `h:${i}` }));
  const full = seedMembers(peers, { id: 1, httpAddress: "" });
  throws(
    () => withJoiningMember(full, { id: MEMBERS_MAX + 1, peerAddress: "x:1", httpAddress: "" }),
    (e) => codeOf(e) === "limit_exceeded",
  );
});

Deno.test("parseMembersRecord() round-trips and refuses corrupt values", async (t) => {
  const record = seedMembers(PEERS, { id: 1, httpAddress: "h:1" });
  deepEqual(parseMembersRecord(formatMembersRecord(record)), record);
  const cases: [string, string][] = [
    ["not JSON", "{"],
    ["no members", '{"version":1,"members":[]}'],
    [
      "a zero version",
      '{"version":0,"members":[{"id":1,"peerAddress":"","httpAddress":"",' +
      '"state":"active"}]}',
    ],
    [
      "an unknown state",
      '{"version":1,"members":[{"id":1,"peerAddress":"","httpAddress":"",' +
      '"state":"gone"}]}',
    ],
    [
      "unsorted ids",
      '{"version":1,"members":[{"id":2,"peerAddress":"","httpAddress":"",' +
      '"state":"active"},{"id":1,"peerAddress":"","httpAddress":"","state":"active"}]}',
    ],
  ];
  for (const [name, text] of cases) {
    await t.step(name, () => {
      throws(() => parseMembersRecord(text), (e) => codeOf(e) === "storage_corrupt");
    });
  }
});

/** Shard 0's meta record in memory: a swap writes only over the expected value. */
class MemoryMeta {
  text: string | null = null;
  leader = 1;

  storeFor(nodeId: number, isHosting: boolean): MembersStore {
    return {
      readLocal: (name) => isHosting && name === MEMBERS_META ? this.text : null,
      isShardZeroLeader: () => isHosting && this.leader === nodeId,
      read: (name) => Promise.resolve(name === MEMBERS_META ? this.text : null),
      swap: (name, expected, value) => {
        equal(name, MEMBERS_META);
        if (this.text !== expected) return Promise.resolve({ isSwapped: false, value: this.text });
        this.text = value;
        return Promise.resolve({ isSwapped: true, value });
      },
    };
  }
}

const quiet = new Logger({ level: "error", format: "json", write: () => {}, nowMs: () => 0 });

function membershipOf(meta: MemoryMeta, id: number, isHosting: boolean) {
  const dialed: [number, string][] = [];
  const refused: number[][] = [];
  const membership = new Membership({
    self: { id, peerAddress: `127.0.0.1:700${id}`, httpAddress: `127.0.0.1:800${id}` },
    peers: PEERS.filter((peer) => peer.id <= 3),
    store: meta.storeFor(id, isHosting),
    effects: {
      setPeerAddress: (node, address) => dialed.push([node, address]),
      refuse: (ids) => refused.push([...ids]),
    },
    logger: quiet,
  });
  return { membership, dialed, refused };
}

Deno.test("Membership: the leader seeds, every node fills in its HTTP address", async () => {
  const meta = new MemoryMeta();
  const one = membershipOf(meta, 1, true);
  const two = membershipOf(meta, 2, true);
  const four = membershipOf(meta, 4, false);
  await two.membership.check();
  equal(meta.text, null, "only shard 0's leader seeds");
  await four.membership.check();
  equal(meta.text, null, "a node without shard 0 reads and finds nothing");
  await one.membership.check();
  const seeded = parseMembersRecord(meta.text!);
  deepEqual(seeded.members.map((member) => member.id), [1, 2, 3]);
  equal(memberOf(seeded, 1)?.httpAddress, "127.0.0.1:8001");
  await Promise.all([two.membership.check(), one.membership.check()]);
  const filled = parseMembersRecord(meta.text!);
  equal(memberOf(filled, 2)?.httpAddress, "127.0.0.1:8002");
  equal(memberOf(filled, 3)?.httpAddress, "", "node 3 has not checked yet");
});

Deno.test("Membership: a joined member is dialed, a removed one refused", async () => {
  const meta = new MemoryMeta();
  const one = membershipOf(meta, 1, true);
  await one.membership.check();
  deepEqual(one.dialed, [], "the static peers are known already");
  await one.membership.update((record) =>
    withJoiningMember(record, { id: 5, peerAddress: "127.0.0.1:7005", httpAddress: "" })
  );
  const two = membershipOf(meta, 2, false);
  await two.membership.check();
  deepEqual(two.dialed, [[5, "127.0.0.1:7005"]]);
  await one.membership.update((record) =>
    withMemberState(withMemberState(record, 3, "draining"), 3, "removed")
  );
  await two.membership.check();
  deepEqual(two.refused, [[3]]);
  await two.membership.check();
  deepEqual(two.refused, [[3]], "the same set is applied once");
  equal(two.membership.current?.members.length, 4);
});

Deno.test("Membership.update() reports a missing record as shard_unavailable", async () => {
  const meta = new MemoryMeta();
  const two = membershipOf(meta, 2, false);
  await rejects(
    two.membership.update((record) => record),
    (e) => codeOf(e) === "shard_unavailable",
  );
});

Deno.test("Membership.updatePlacement(): read-modify-write over a racing writer", async () => {
  const records = new Map<string, string>();
  let races = 1;
  const store: MembersStore = {
    readLocal: () => null,
    isShardZeroLeader: () => false,
    read: (name) => Promise.resolve(records.get(name) ?? null),
    swap: (name, expected, value) => {
      // The rebalance driver writes its own entry once, between this node's read and swap.
      if (races-- > 0) records.set(name, formatPlacement(new Map([[0, [1, 2, 3]]])));
      if ((records.get(name) ?? null) !== expected) {
        return Promise.resolve({ isSwapped: false, value: records.get(name) ?? null });
      }
      records.set(name, value);
      return Promise.resolve({ isSwapped: true, value });
    },
  };
  const membership = new Membership({
    self: { id: 1, peerAddress: "127.0.0.1:7001", httpAddress: "127.0.0.1:8001" },
    peers: [],
    store,
    effects: { setPeerAddress: () => {}, refuse: () => {} },
    logger: quiet,
  });
  await membership.updatePlacement((current) => new Map([...current, [4, [4, 2, 1]]]));
  const written = parsePlacement(records.get(PLACEMENT_META)!);
  deepEqual([...written], [[0, [1, 2, 3]], [4, [1, 2, 4]]], "the racing entry is kept");
  deepEqual(membership.placementOf(4), [1, 2, 4], "the writer adopts what it wrote");
  await membership.updatePlacement((current) => {
    const next = new Map(current);
    next.delete(4);
    return next;
  });
  deepEqual([...parsePlacement(records.get(PLACEMENT_META)!)], [[0, [1, 2, 3]]]);
  equal(membership.placementOf(4), null);
});

Deno.test("Membership.checkAfterChange() reads again after a check under way", async () => {
  const meta = new MemoryMeta();
  const one = membershipOf(meta, 1, true);
  await one.membership.check();
  const store = meta.storeFor(4, false);
  const gate = Promise.withResolvers<void>();
  let reads = 0;
  const four = new Membership({
    self: { id: 4, peerAddress: "127.0.0.1:7004", httpAddress: "" },
    peers: PEERS,
    store: {
      ...store,
      read: async (name) => {
        reads++;
        const text = await store.read(name);
        if (reads === 1) await gate.promise; // The first read took the old record, then stalled.
        return text;
      },
    },
    effects: { setPeerAddress: () => {}, refuse: () => {} },
    logger: quiet,
  });
  const early = four.check();
  await one.membership.update((record) =>
    withJoiningMember(record, { id: 5, peerAddress: "127.0.0.1:7005", httpAddress: "" })
  );
  const after = four.checkAfterChange();
  gate.resolve();
  await early;
  equal(await after, true);
  ok(reads >= 3, `the members record was read again after the change (${reads} reads)`);
  ok(memberOf(four.current!, 5) !== null, "the change is adopted");
});

/** A record with member 5 joined and member 3 removed, as shard 0 committed it. */
function grownRecord(): string {
  let record = seedMembers(PEERS, { id: 1, httpAddress: "127.0.0.1:8001" });
  record = withJoiningMember(record, { id: 5, peerAddress: "127.0.0.1:7005", httpAddress: "" });
  record = withMemberState(withMemberState(record, 3, "draining"), 3, "removed");
  return formatMembersRecord(record);
}

Deno.test("Membership: the saved record's members are dialed before the first read", () => {
  const dialed: [number, string][] = [];
  const refused: number[][] = [];
  const membership = new Membership({
    self: { id: 2, peerAddress: "127.0.0.1:7002", httpAddress: "127.0.0.1:8002" },
    peers: PEERS,
    store: new MemoryMeta().storeFor(2, false),
    effects: {
      setPeerAddress: (node, address) => dialed.push([node, address]),
      refuse: (ids) => refused.push([...ids]),
    },
    logger: quiet,
    saved: grownRecord(),
  });
  deepEqual(dialed, [[5, "127.0.0.1:7005"]], "the joined member, not the static peers again");
  deepEqual(refused, [[3]], "a member removed once stays refused");
  equal(membership.current, null, "the record in force still comes from shard 0");
  const damaged = new Membership({
    self: { id: 2, peerAddress: "127.0.0.1:7002", httpAddress: "127.0.0.1:8002" },
    peers: PEERS,
    store: new MemoryMeta().storeFor(2, false),
    effects: { setPeerAddress: () => ok(false, "nothing to dial"), refuse: () => {} },
    logger: quiet,
    saved: "{not json",
  });
  equal(damaged.current, null, "a damaged saved record is only a missed head start");
});

Deno.test("Membership: cut off from shard 0, it adopts its peers' newest record", async () => {
  const dialed: [number, string][] = [];
  const asked: number[][] = [];
  const older = formatMembersRecord(seedMembers(PEERS, { id: 1, httpAddress: "" }));
  const newest = grownRecord();
  const placement = formatPlacement(new Map([[0, [1, 2, 5]]]));
  const unreachable = new AspenError("shard_unavailable", "Cannot reach a leader of shard 0");
  const membership = new Membership({
    self: { id: 2, peerAddress: "127.0.0.1:7002", httpAddress: "127.0.0.1:8002" },
    peers: PEERS,
    store: {
      readLocal: () => null,
      isShardZeroLeader: () => false,
      read: () => Promise.reject(unreachable),
      swap: () => Promise.reject(unreachable),
      askPeers: (ids) => {
        asked.push([...ids].sort());
        return Promise.resolve([
          { members: newest, placement },
          { members: older, placement: null },
          { members: "{damaged", placement: null },
          { members: null, placement: null },
        ]);
      },
    },
    effects: { setPeerAddress: (node, address) => dialed.push([node, address]), refuse: () => {} },
    logger: quiet,
  });
  await rejects(membership.check(), (e) => codeOf(e) === "shard_unavailable");
  deepEqual(asked, [[1, 3]], "every other node it knows is asked");
  deepEqual(dialed, [[5, "127.0.0.1:7005"]], "the joined member is dialed");
  equal(membership.currentText, newest, "the newest record wins over an older one");
  deepEqual(membership.placementOf(0), [1, 2, 5], "the placement too, having none");
});
