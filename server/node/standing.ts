/**
 * A node's standing in the members record, asked at start (issue 15): a node replaced (or
 * drained) while it was down comes back with its old data, and every peer refuses its peer
 * handshake without telling it why. So before it opens any replica, a node that has seen the
 * members record asks the members it knew, over HTTP, what state the record gives it
 * (`POST /v1/cluster/nodes/{id}/standing`). Only an answer that the node is `removed` counts:
 * the node then writes its removed mark and stops with `node_removed`, having changed no shard
 * file. Anything else (no answer, a timeout, an error, any other state, an answer that does not
 * prove the cluster secret) lets the node start as before, so a member that is down, slow or
 * does not know the node yet is never taken for a removal.
 *
 * Both directions prove the cluster secret (the peer channel's, never sent): the question
 * carries a fresh nonce and an HMAC over it and the node id, the answer an HMAC over the same
 * nonce, the node id and the state. A client without the secret learns nothing, and nobody
 * without it can make a node believe it was removed (the route is plain HTTP).
 *
 * Where a node finds the members: `known-members.json` in its data dir, the members record as
 * it last read it (written by membership.ts on every change), and the `--join` URL when given.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { MemberState } from "../../api/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import { writeFileAtomic } from "../../transport/mod.ts";
import type { Logger } from "../log.ts";
import { MEMBER_STATES, type MembersRecord, parseMembersRecord } from "./members.ts";
import { writeRemovedMarker } from "./removed_marker.ts";

/** The file holding the members record as this node last read it. */
export const KNOWN_MEMBERS_FILE = "known-members.json";
/** Random bytes in a standing question's nonce. */
export const STANDING_NONCE_BYTES = 32;
/**
 * How often a running node that reaches none of the members it knew asks them again (it
 * started while they were down, say, and they refuse it now).
 */
export const STANDING_RECHECK_MS = 10_000;
/** How long one member may take to answer a standing question. */
export const STANDING_TIMEOUT_MS = 2_000;
/** The most members asked at start (one question each, all at once). */
export const STANDING_ASKED_MAX = 16;
/** The largest answer read, in bytes. */
export const STANDING_RESPONSE_BYTES_MAX = 4 * 1024;

const HEX_64 = /^[0-9a-f]{64}$/;

/** The question's body. */
export interface StandingQuestion {
  /** STANDING_NONCE_BYTES random bytes, hex. */
  readonly nonce: string;
  /** HMAC-SHA256 with the cluster secret over the question (hex). */
  readonly proof: string;
}

/** The answer's body: the member's state in the record (null: not a member). */
export interface StandingAnswer {
  readonly node: number;
  readonly state: MemberState | null;
  /** HMAC-SHA256 with the cluster secret over the nonce, the node and the state (hex). */
  readonly proof: string;
}

/** The proof of a question about `node` with `nonce`. */
export function questionProof(secret: string, node: number, nonce: string): string {
  return hmac(secret, `aspen standing question v1\n${node}\n${nonce}`);
}

/** The proof of an answer (`state`) about `node` to the question with `nonce`. */
export function answerProof(
  secret: string,
  node: number,
  nonce: string,
  state: MemberState | null,
): string {
  return hmac(secret, `aspen standing answer v1\n${node}\n${nonce}\n${state ?? "none"}`);
}

/**
 * Answers a standing question about `node` (the member side of the route).
 *
 * @throws {AspenError} `bad_request` for a malformed body, `unauthorized` when the proof does
 *   not match the cluster secret; `stateOf`'s errors.
 */
export async function answerStanding(
  body: Readonly<Record<string, unknown>>,
  node: number,
  options: {
    readonly secret: string;
    readonly stateOf: (node: number) => Promise<MemberState | null>;
  },
): Promise<StandingAnswer> {
  const nonce = body.nonce;
  const proof = body.proof;
  for (const [name, value] of [["nonce", nonce], ["proof", proof]] as const) {
    if (typeof value !== "string" || !HEX_64.test(value)) {
      throw new AspenError(
        "bad_request",
        `Cannot answer the standing of node ${node}: "${name}" must be 64 lowercase hex digits`,
      );
    }
  }
  if (!isSameHex(questionProof(options.secret, node, nonce as string), proof as string)) {
    throw new AspenError(
      "unauthorized",
      `Cannot answer the standing of node ${node}: the proof does not match this cluster's secret`,
    );
  }
  const state = await options.stateOf(node);
  return { node, state, proof: answerProof(options.secret, node, nonce as string, state) };
}

/**
 * The state member `node` has in the record as a member sees it: from the record it read last
 * (every MEMBERS_CHECK_MS, from shard 0: it may lag, never invents a removal, and a removal is
 * never undone), or from a linearizable read when it has read none yet. A lagging answer can
 * only miss a removal made in the last second, and the asker asks every member it knew.
 */
export async function memberStateOf(
  node: number,
  view: {
    readonly current: MembersRecord | null;
    refresh(): Promise<MembersRecord | null>;
  },
): Promise<MemberState | null> {
  const stateIn = (record: MembersRecord | null) =>
    record?.members.find((member) => member.id === node)?.state ?? null;
  if (view.current !== null) return stateIn(view.current);
  return stateIn(await view.refresh());
}

/** Saves the members record as this node read it (known-members.json). */
export async function saveKnownMembers(dataDir: string, text: string): Promise<void> {
  await writeFileAtomic(`${dataDir}/${KNOWN_MEMBERS_FILE}`, text + "\n", 0o644);
}

/**
 * The members record as this node last saved it (known-members.json), or null when it has
 * none. The text is not checked here: it is a hint, and its readers parse it.
 */
export async function readKnownMembers(dataDir: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(`${dataDir}/${KNOWN_MEMBERS_FILE}`)).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** What the start check needs. */
export interface StandingCheck {
  readonly nodeId: number;
  readonly dataDir: string;
  /** The cluster secret (hex). */
  readonly secret: string;
  /** The `--join` URL, asked too when set. */
  readonly joinUrl: string | null;
  readonly logger: Logger;
  readonly wallMs: () => number;
  readonly randomBytes: (count: number) => Uint8Array;
  /** Injected for tests; `fetch` by default. */
  readonly fetch?: typeof fetch;
}

/**
 * Asks the known members whether this node was removed; when one proves it was, writes the
 * removed mark and refuses to start. Reads nothing but `known-members.json` from the data dir
 * and writes nothing but `removed.json`.
 *
 * @throws {AspenError} `node_removed` naming the node, the member that answered and what to do.
 */
export async function checkStandingAtStart(check: StandingCheck): Promise<void> {
  const removedBy = await askWhetherRemoved(check);
  if (removedBy === null) return;
  await writeRemovedMarker(check.dataDir, { nodeId: check.nodeId, removedAtMs: check.wallMs() });
  check.logger.error("This node was removed from the cluster: refusing to start", {
    node: check.nodeId,
    answeredBy: removedBy,
  });
  throw new AspenError(
    "node_removed",
    `Cannot start node ${check.nodeId}: the member at ${removedBy} answers that it was removed ` +
      "from the cluster (drained or replaced while it was down); nothing in its data dir was " +
      `changed but the mark "removed.json". Its node id and certificate are refused for good: ` +
      `wipe the data dir "${check.dataDir}" and start a new node with a new id and --join`,
    { node: check.nodeId },
  );
}

/**
 * Asks the known members (all at once) whether this node was removed.
 *
 * @returns the base URL of a member that proved it was, or null.
 */
export async function askWhetherRemoved(check: StandingCheck): Promise<string | null> {
  const urls = await membersToAsk(check);
  if (urls.length === 0) return null;
  const answers = await Promise.all(urls.map((url) => askOne(check, url)));
  return urls.find((_, index) => answers[index] === "removed") ?? null;
}

/** The base URLs of the members to ask: from known-members.json, and the join URL. */
async function membersToAsk(check: StandingCheck): Promise<string[]> {
  const urls = new Set<string>();
  if (check.joinUrl !== null) urls.add(new URL(check.joinUrl).origin);
  const text = await readKnownMembers(check.dataDir);
  if (text !== null) {
    let record: MembersRecord | null = null;
    try {
      record = parseMembersRecord(text.trim());
    } catch (error) {
      // Only a hint of whom to ask: a damaged copy means asking fewer members, not failing.
      check.logger.warn("Cannot read the known members", {
        file: KNOWN_MEMBERS_FILE,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
    for (const member of record?.members ?? []) {
      if (member.id === check.nodeId || member.state === "removed") continue;
      if (member.httpAddress === "") continue;
      urls.add(`http://${member.httpAddress}`);
    }
  }
  return [...urls].slice(0, STANDING_ASKED_MAX);
}

/** One member's proven answer, or null (no answer, an error, or an unproven answer). */
async function askOne(check: StandingCheck, base: string): Promise<MemberState | null> {
  const nonce = toHex(check.randomBytes(STANDING_NONCE_BYTES));
  const question: StandingQuestion = {
    nonce,
    proof: questionProof(check.secret, check.nodeId, nonce),
  };
  try {
    const response = await (check.fetch ?? fetch)(
      `${base}/v1/cluster/nodes/${check.nodeId}/standing`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(question),
        signal: AbortSignal.timeout(STANDING_TIMEOUT_MS),
      },
    );
    const text = await response.text();
    if (response.status !== 200 || text.length > STANDING_RESPONSE_BYTES_MAX) return null;
    const answer = JSON.parse(text) as Partial<StandingAnswer> | null;
    const state = answer?.state;
    const isState = state === null || MEMBER_STATES.includes(state as MemberState);
    if (!isState || answer?.node !== check.nodeId || typeof answer.proof !== "string") return null;
    const expected = answerProof(check.secret, check.nodeId, nonce, state as MemberState | null);
    return isSameHex(expected, answer.proof) ? state as MemberState | null : null;
  } catch {
    return null;
  }
}

function hmac(secret: string, text: string): string {
  return createHmac("sha256", hexBytes(secret)).update(text).digest("hex");
}

function isSameHex(expected: string, given: string): boolean {
  if (!HEX_64.test(given) || expected.length !== given.length) return false;
  return timingSafeEqual(hexBytes(expected), hexBytes(given));
}

function hexBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  }
  return bytes;
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
