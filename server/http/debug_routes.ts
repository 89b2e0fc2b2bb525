/**
 * Routes for fault tests and operators, root token only:
 * - `GET /v1/debug/state`: per local shard replica, its applied index and a hash of its
 *   replicated state, so a test can check that the replicas of a shard converged. Hashing
 *   reads the whole state machine (in steps that let the node go on meanwhile, and still
 *   about a second of work for a few hundred thousand keys): `?stateHash=false` leaves it
 *   out, for cheap polling, and `?shard=N` answers for one shard only.
 * - `GET|PUT|DELETE /v1/test/faults`: drop or delay this node's outbound peer traffic to chosen
 *   nodes (partitions).
 * - `POST /v1/test/campaign {"shard"}`: makes this node's replica of the shard start an
 *   election now (chaos tests pit campaigns against leadership transfers under load).
 *
 * Only a node started with `--enable-test-faults` accepts the `/v1/test/` routes; any other node
 * answers 404 and names the flag, so a production node can never be told to cut itself off.
 */
import type { Context, Hono } from "hono";
import { AspenError, ROUTER_SHARDS_MAX } from "../../shard/mod.ts";
import type { TokenRole } from "../auth.ts";
import type { PeerFaults } from "../../transport/mod.ts";
import { integerField, queryInteger, readJsonObject } from "./body.ts";

/** The `aspen node` flag that enables the fault endpoints (a flag only, never a setting). */
export const TEST_FAULTS_FLAG = "enable-test-faults";

/** One local replica in `GET /v1/debug/state`. */
export interface ReplicaDebugState {
  readonly shard: number;
  readonly role: string;
  readonly term: number;
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /**
   * sha-256 hex of the replicated state at `appliedIndex` (StateMachine.stateHash()); null
   * when the request asked for `stateHash=false`.
   */
  readonly stateHash: string | null;
}

/** What the debug routes need from the node. */
export interface DebugRoutesOptions {
  readonly nodeId: number;
  /**
   * The cluster members now (the configured ones and those the members record added); fault
   * rules may name any of them but this node.
   */
  readonly members: () => readonly number[];
  /** The peer transport's fault rules. */
  readonly faults: PeerFaults;
  /** Every local replica's state; a hash comes with the applied index it was taken at. */
  readonly replicas: (
    options: { readonly isHashed: boolean; readonly shard: number | null },
  ) => Promise<readonly ReplicaDebugState[]>;
  /**
   * Makes the local replica of `shard` campaign (`ShardReplica.campaign()`).
   *
   * @throws {AspenError} `unknown_shard` when this node hosts no replica of the shard.
   */
  readonly campaign: (shard: number) => Promise<void>;
  /** As in AppOptions: a token's role, or null; null for the function means auth is off. */
  readonly authenticate: ((token: string) => TokenRole | null) | null;
}

/** Adds the debug and test-fault routes (after the app's own auth middleware). */
export function addDebugRoutes(app: Hono, options: DebugRoutesOptions): void {
  app.get("/v1/debug/state", async (c) => {
    const action = "read the debug state";
    requireRoot(c, options, action);
    const stateHash = c.req.query("stateHash") ?? "true";
    if (stateHash !== "true" && stateHash !== "false") {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: query parameter "stateHash" is "${stateHash}" but must be true or false`,
        { parameter: "stateHash" },
      );
    }
    const shard = c.req.query("shard") === undefined
      ? null
      : queryInteger(c.req.query("shard"), "shard", action, {
        min: 0,
        max: ROUTER_SHARDS_MAX - 1,
        defaultValue: 0,
      });
    const shards = await options.replicas({ isHashed: stateHash === "true", shard });
    return c.json({ node: options.nodeId, shards });
  });
  app.get("/v1/test/faults", (c) => {
    const disabled = refuseUnlessEnabled(c, options, "read peer faults");
    return disabled ?? c.json(faultsBody(options));
  });
  app.put("/v1/test/faults", async (c) => {
    const action = "set a peer fault";
    const disabled = refuseUnlessEnabled(c, options, action);
    if (disabled !== null) return disabled;
    const body = await readJsonObject(c.req.raw, action, ["peer", "dropProbability", "delayMs"]);
    const peer = peerField(body.peer, options, action);
    const dropProbability = body.dropProbability ?? 0;
    const delayMs = body.delayMs ?? 0;
    if (typeof dropProbability !== "number" || typeof delayMs !== "number") {
      throw new AspenError(
        "bad_request",
        `Cannot ${action}: "dropProbability" and "delayMs" must be numbers`,
      );
    }
    options.faults.set(peer, { dropProbability, delayMs });
    return c.json(faultsBody(options));
  });
  app.delete("/v1/test/faults", (c) => {
    const action = "clear peer faults";
    const disabled = refuseUnlessEnabled(c, options, action);
    if (disabled !== null) return disabled;
    const text = c.req.query("peer");
    if (text === undefined) options.faults.clear();
    else options.faults.clear(peerField(Number(text), options, action));
    return c.json(faultsBody(options));
  });
  app.post("/v1/test/campaign", async (c) => {
    const action = "start a campaign";
    const disabled = refuseUnlessEnabled(c, options, action);
    if (disabled !== null) return disabled;
    const body = await readJsonObject(c.req.raw, action, ["shard"]);
    if (body.shard === undefined) {
      throw new AspenError("bad_request", `Cannot ${action}: field "shard" is missing`, {
        field: "shard",
      });
    }
    const shard = integerField(body, "shard", action, 0);
    await options.campaign(shard);
    return c.json({ node: options.nodeId, shard });
  });
}

function faultsBody(options: DebugRoutesOptions) {
  return {
    node: options.nodeId,
    faults: options.faults.list().map(({ peer, rule }) => ({ peer, ...rule })),
  };
}

/** Null when the fault endpoints are on; else the 404 that names the flag. */
function refuseUnlessEnabled(
  c: Context,
  options: DebugRoutesOptions,
  action: string,
): Response | null {
  requireRoot(c, options, action);
  if (options.faults.isEnabled) return null;
  return c.json({
    error: {
      code: "not_found",
      message: `Cannot ${action}: fault injection is disabled on node ${options.nodeId}; ` +
        `it is a test facility, enabled only by starting the node with --${TEST_FAULTS_FLAG}`,
      flag: `--${TEST_FAULTS_FLAG}`,
    },
  }, 404);
}

function peerField(value: unknown, options: DebugRoutesOptions, action: string): number {
  const members = options.members();
  const isMember = typeof value === "number" && members.includes(value);
  if (!isMember || value === options.nodeId) {
    throw new AspenError(
      "bad_request",
      `Cannot ${action}: "peer" must be the id of another member ` +
        `(${members.filter((id) => id !== options.nodeId).join(", ")}), ` +
        `not ${value === undefined ? "nothing" : JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Lets only the root token through; the app's middleware already refused missing or invalid
 * tokens, and read-only tokens for anything but GET.
 *
 * @throws {AspenError} `forbidden` for a read-only token.
 */
function requireRoot(c: Context, options: DebugRoutesOptions, action: string): void {
  if (options.authenticate === null) return;
  const match = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "");
  const role = match === null ? null : options.authenticate(match[1]!);
  if (role !== "root") {
    throw new AspenError("forbidden", `Cannot ${action}: this needs the root token`);
  }
}
