/**
 * The node requests' codec: every kind survives encode and decode, and a kind this node does
 * not know is a `bad_request` (so an older node answers the driver's `leaderViews` with an
 * error, and the driver asks that node's shards one by one), never taken for another kind.
 */
import { deepEqual, throws } from "node:assert/strict";
import { decodeNodeRequest, encodeNodeRequest, type NodeRequest } from "./node_requests.ts";

Deno.test("node requests survive encode and decode; an unknown kind is refused", () => {
  const requests: NodeRequest[] = [
    { kind: "info" },
    { kind: "hostReplica", shard: 3, term: 2 },
    { kind: "dropReplica", shard: 3, term: 2 },
    { kind: "removed" },
    { kind: "leaderViews" },
    { kind: "membersRecord" },
  ];
  for (const request of requests) deepEqual(decodeNodeRequest(encodeNodeRequest(request)), request);
  throws(
    () => decodeNodeRequest(new TextEncoder().encode(JSON.stringify({ kind: "leaderView" }))),
    /unknown kind "leaderView"/,
  );
});
