/**
 * Throughput of a three-replica in-memory group: committed proposals per second with batching,
 * for 1 and for 256 concurrent proposers, 256-byte payloads; the last case proposes each
 * turn's commands with proposeBatch() (one append per follower), as the shard driver does.
 * Each iteration commits PROPOSALS_PER_ITERATION proposals; proposals/s =
 * PROPOSALS_PER_ITERATION / time per iteration.
 * Messages go through the binary codec, as they would between processes; storage is
 * MemoryStorage, so this measures the core, not the disk. Run with `deno task bench`.
 */
import { decodeMessage, encodeMessage } from "./codec.ts";
import { SeededPrng } from "./prng.ts";
import { RawNode } from "./raw_node.ts";
import { MemoryStorage } from "./storage.ts";
import type { Message, ReplicaId } from "./types.ts";

const PROPOSALS_PER_ITERATION = 4096;
const PAYLOAD_BYTES = 256;

interface Member {
  readonly node: RawNode;
  readonly storage: MemoryStorage;
}

function makeGroup(): Map<number, Member> {
  const voters = [1, 2, 3] as ReplicaId[];
  const members = new Map<number, Member>();
  for (const id of voters) {
    const storage = new MemoryStorage({ voters, learners: [] });
    const node = new RawNode({
      id,
      electionTicks: 10,
      heartbeatTicks: 1,
      prng: new SeededPrng(id),
      preVote: true,
      checkQuorum: true,
      leaseReads: false,
    }, storage);
    members.set(id, { node, storage });
  }
  return members;
}

/** Drains every Ready once; returns how many proposals the leader applied. */
function turn(members: Map<number, Member>, inbox: Uint8Array[]): number {
  let applied = 0;
  for (const bytes of inbox.splice(0)) {
    const decoded = decodeMessage(bytes);
    if (!decoded.ok) throw new Error(decoded.error);
    members.get(decoded.message.to)?.node.step(decoded.message);
  }
  for (const [id, member] of members) {
    if (!member.node.hasReady()) continue;
    const ready = member.node.ready();
    if (ready.hardState !== null) member.storage.setHardState(ready.hardState);
    member.storage.append(ready.entries);
    for (const message of ready.messages as Message[]) inbox.push(encodeMessage(message));
    if (id === 1) {
      for (const entry of ready.committed) if (entry.data.byteLength > 0) applied++;
    }
    member.node.advance(ready);
    const status = member.node.status();
    if (status.applied - member.storage.firstIndex() > 10_000) {
      member.storage.createSnapshot(status.applied, status.confState, new Uint8Array(0));
      member.storage.compact(status.applied);
    }
  }
  return applied;
}

function runProposers(concurrency: number, isBatched = false): void {
  const members = makeGroup();
  const leader = members.get(1)!.node;
  const inbox: Uint8Array[] = [];
  leader.campaign();
  for (let i = 0; i < 20; i++) turn(members, inbox);
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  let proposed = 0;
  let committed = 0;
  while (committed < PROPOSALS_PER_ITERATION) {
    const count = Math.min(
      concurrency - (proposed - committed),
      PROPOSALS_PER_ITERATION - proposed,
    );
    const results = isBatched
      ? leader.proposeBatch(Array.from({ length: count }, () => payload))
      : Array.from({ length: count }, () => leader.propose(payload));
    for (const result of results) {
      if (result.kind !== "ok") throw new Error(`propose failed: ${result.kind}`);
    }
    proposed += count;
    committed += turn(members, inbox);
  }
}

Deno.bench({
  name: "3 replicas, 1 proposer, 256 B: 4096 committed proposals",
  group: "commit",
  fn: () => runProposers(1),
});

Deno.bench({
  name: "3 replicas, 256 proposers, 256 B: 4096 committed proposals",
  group: "commit",
  baseline: true,
  fn: () => runProposers(256),
});

Deno.bench({
  name: "3 replicas, 256 proposers, proposeBatch: 4096 committed proposals",
  group: "commit",
  fn: () => runProposers(256, true),
});
