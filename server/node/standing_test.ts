/**
 * The standing check (standing.ts) in process (the member's route: server/http/
 * standing_route_test.ts): the start check stops a node (node_removed, the mark written) only
 * on a proven `removed` answer, and starts it on every other outcome: another state, a forged
 * answer, a member that is down or answers an error, no known member at all.
 */
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { AspenError } from "../../shard/mod.ts";
import type { MemberState } from "../../api/mod.ts";
import { Logger } from "../log.ts";
import { REMOVED_MARKER_FILE } from "./removed_marker.ts";
import {
  answerProof,
  checkStandingAtStart,
  KNOWN_MEMBERS_FILE,
  memberStateOf,
  questionProof,
  saveKnownMembers,
} from "./standing.ts";
import type { MembersRecord } from "./members.ts";

const SECRET = "11".repeat(32);
const OTHER_SECRET = "22".repeat(32);
const silent = new Logger({ level: "error", format: "text", write: () => {}, nowMs: Date.now });

const RECORD: MembersRecord = {
  version: 7,
  members: [
    { id: 1, peerAddress: "127.0.0.1:7001", httpAddress: "127.0.0.1:8001", state: "active" },
    { id: 2, peerAddress: "127.0.0.1:7002", httpAddress: "127.0.0.1:8002", state: "active" },
    { id: 3, peerAddress: "127.0.0.1:7003", httpAddress: "", state: "active" },
    { id: 4, peerAddress: "127.0.0.1:7004", httpAddress: "127.0.0.1:8004", state: "removed" },
    { id: 5, peerAddress: "127.0.0.1:7005", httpAddress: "127.0.0.1:8005", state: "removed" },
  ],
};

Deno.test("memberStateOf() answers from the record it read, or reads one", async () => {
  const unused = () => Promise.reject(new Error("not read again"));
  equal(await memberStateOf(4, { current: RECORD, refresh: unused }), "removed");
  equal(await memberStateOf(1, { current: RECORD, refresh: unused }), "active");
  equal(await memberStateOf(9, { current: RECORD, refresh: unused }), null);
  equal(
    await memberStateOf(5, { current: null, refresh: () => Promise.resolve(RECORD) }),
    "removed",
  );
  equal(await memberStateOf(9, { current: null, refresh: () => Promise.resolve(null) }), null);
});

/** A data dir holding RECORD as node 4's known members. */
async function dataDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-standing-" });
  await saveKnownMembers(dir, JSON.stringify(RECORD));
  return dir;
}

/** A fetch that answers every member from `answer(url, nonce)`, recording the URLs asked. */
function fakeFetch(answer: (url: string, nonce: string) => Response | Promise<Response>) {
  const asked: string[] = [];
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    asked.push(url);
    const body = JSON.parse(String(init?.body)) as { nonce: string; proof: string };
    equal(body.proof, questionProof(SECRET, 4, body.nonce));
    return await answer(url, body.nonce);
  }) as typeof fetch;
  return { fetcher, asked };
}

function check(dir: string, fetcher: typeof fetch, joinUrl: string | null = null) {
  let counter = 0;
  return checkStandingAtStart({
    nodeId: 4,
    dataDir: dir,
    secret: SECRET,
    joinUrl,
    logger: silent,
    wallMs: () => 1_700_000_000_000,
    randomBytes: (count) => new Uint8Array(count).fill(++counter),
    fetch: fetcher,
  });
}

function answered(nonce: string, state: MemberState | null, secret = SECRET) {
  return Response.json({ node: 4, state, proof: answerProof(secret, 4, nonce, state) });
}

async function hasMark(dir: string): Promise<boolean> {
  return await Deno.stat(`${dir}/${REMOVED_MARKER_FILE}`).then(() => true, () => false);
}

Deno.test("a proven removed answer writes the mark and refuses to start", async () => {
  const dir = await dataDir();
  try {
    const { fetcher, asked } = fakeFetch((url, nonce) =>
      url.includes(":8002") ? answered(nonce, "removed") : answered(nonce, "active")
    );
    await rejects(check(dir, fetcher, "http://10.0.0.9:9000/some/path"), (e) => {
      ok(e instanceof AspenError);
      equal(e.code, "node_removed");
      match(e.message, /Cannot start node 4: the member at http:\/\/127\.0\.0\.1:8002 answers/);
      match(e.message, /wipe the data dir .* new id and --join/);
      return true;
    });
    // Members with an HTTP address, not itself, not removed ones; and the join URL's origin.
    deepEqual(asked.sort(), [
      "http://10.0.0.9:9000/v1/cluster/nodes/4/standing",
      "http://127.0.0.1:8001/v1/cluster/nodes/4/standing",
      "http://127.0.0.1:8002/v1/cluster/nodes/4/standing",
    ]);
    const mark = JSON.parse(await Deno.readTextFile(`${dir}/${REMOVED_MARKER_FILE}`));
    deepEqual(mark, { nodeId: 4, removedAtMs: 1_700_000_000_000 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("anything but a proven removed answer lets the node start", async (t) => {
  const cases: [string, (url: string, nonce: string) => Response | Promise<Response>][] = [
    ["active", (_, nonce) => answered(nonce, "active")],
    ["draining", (_, nonce) => answered(nonce, "draining")],
    ["not a member", (_, nonce) => answered(nonce, null)],
    ["removed, proven with another secret", (_, nonce) => answered(nonce, "removed", OTHER_SECRET)],
    ["removed, proven for another nonce", () => answered("cd".repeat(32), "removed")],
    [
      "removed, with the proof of another state",
      (_, nonce) =>
        Response.json({
          node: 4,
          state: "removed",
          proof: answerProof(SECRET, 4, nonce, "active"),
        }),
    ],
    ["an error status", () => Response.json({ error: { code: "not_found" } }, { status: 404 })],
    ["not JSON", () => new Response("<html>")],
    ["unreachable", () => Promise.reject(new TypeError("connection refused"))],
  ];
  for (const [name, answer] of cases) {
    await t.step(name, async () => {
      const dir = await dataDir();
      try {
        const { fetcher, asked } = fakeFetch(answer);
        await check(dir, fetcher);
        equal(asked.length, 2);
        equal(await hasMark(dir), false);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});

Deno.test("a node that never read the members record asks nobody", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-standing-" });
  try {
    const { fetcher, asked } = fakeFetch(() => {
      throw new Error("not asked");
    });
    await check(dir, fetcher);
    deepEqual(asked, []);
    await Deno.writeTextFile(`${dir}/${KNOWN_MEMBERS_FILE}`, "{ damaged");
    await check(dir, fetcher);
    deepEqual(asked, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
