/**
 * removeNode() over an in-memory members record: a node leaves only while the other healthy
 * nodes can hold the replication factor (409 insufficient_capacity otherwise), replace is
 * refused for a node that is up, a repeated call answers the draining state again, and a
 * removed or unknown node is refused with its own code.
 */
import { deepEqual, equal, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import { memberOf, type MembersRecord, seedMembers, withMemberState } from "./members.ts";
import { type RemovalSources, removeNode } from "./node_removal.ts";

function sourcesOf(nodes: number[], down: number[] = []) {
  const peers = nodes.map((id) => ({ id, address: `h:${id}` }));
  const state = { record: seedMembers(peers, { id: 1, httpAddress: "" }) as MembersRecord };
  const sources: RemovalSources = {
    refresh: () => Promise.resolve(state.record),
    update: (change) => {
      state.record = change(state.record);
      return Promise.resolve(state.record);
    },
    isUp: (node) => !down.includes(node),
    replicationFactor: 3,
  };
  return { state, sources };
}

const codeIs = (code: string) => (error: unknown) =>
  error instanceof AspenError && error.code === code;

Deno.test("removeNode() marks a node draining while 3 healthy nodes remain", async () => {
  const { state, sources } = sourcesOf([1, 2, 3, 4]);
  deepEqual(await removeNode(sources, 4, "remove"), {
    node: 4,
    state: "draining",
    previousState: "active",
  });
  equal(memberOf(state.record, 4)?.state, "draining");
  deepEqual(await removeNode(sources, 4, "remove"), {
    node: 4,
    state: "draining",
    previousState: "draining",
  });
  await rejects(removeNode(sources, 3, "remove"), codeIs("insufficient_capacity"));
});

Deno.test("removeNode() refuses what it cannot do, each with its code", async () => {
  const { state, sources } = sourcesOf([1, 2, 3, 4], [4]);
  await rejects(removeNode(sources, 9, "remove"), codeIs("node_not_found"));
  await rejects(removeNode(sources, 2, "replace"), codeIs("conflict"));
  await removeNode(sources, 4, "replace");
  state.record = withMemberState(state.record, 4, "removed");
  await rejects(removeNode(sources, 4, "remove"), codeIs("node_removed"));
  const three = sourcesOf([1, 2, 3]);
  await rejects(removeNode(three.sources, 1, "remove"), codeIs("insufficient_capacity"));
});
