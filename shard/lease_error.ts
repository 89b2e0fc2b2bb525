/**
 * Errors about one lease, built from structured facts.
 *
 * A shard names a lease by its own id (the index of the entry that granted it); the client API
 * names it differently (server/node/kv_service.ts adds the shard). So a lease error's details
 * carry every fact its message states, the lease id included, and its message is a function of
 * those facts alone: the server reads the facts back with {@linkcode leaseFaultOf} (details
 * survive the peer channel, which carries code, message and details) and builds the same error
 * again with its own id through {@linkcode leaseError}, never by editing the message.
 */

import { assert } from "../raft/mod.ts";
import { AspenError } from "./errors.ts";
import { LEASE_KEYS_MAX } from "./limits.ts";

/** What went wrong with a lease, and what was being done with it. */
export type LeaseFault =
  | {
    readonly code: "lease_not_found";
    readonly action: "revoke" | "keepAlive" | "read";
    readonly lease: number;
  }
  | {
    readonly code: "lease_not_found";
    readonly action: "attach" | "compare";
    readonly lease: number;
    /** The key that was to be attached to the lease, or compared with it. */
    readonly key: string;
  }
  | {
    readonly code: "limit_exceeded";
    readonly action: "attach";
    readonly lease: number;
    readonly key: string;
    /** How many keys the lease holds: LEASE_KEYS_MAX. */
    readonly keyCount: number;
  };

const KEY_ACTIONS: readonly string[] = ["attach", "compare"];
const ID_ACTIONS: readonly string[] = ["revoke", "keepAlive", "read"];

/**
 * The error for `fault`. Its details are the fault's facts (and, past the limit, the limit).
 *
 * @example
 * ```ts
 * const error = leaseError({ code: "lease_not_found", action: "revoke", lease: 7 });
 * console.log(error.message, error.details); // Cannot revoke lease 7: it does not exist {...}
 * ```
 */
export function leaseError(fault: LeaseFault): AspenError {
  // Not always positive: a compare may name any integer, and the server says it is no lease.
  assert(Number.isSafeInteger(fault.lease), "leaseError: a lease id is an integer");
  const { code, ...facts } = fault;
  if (fault.code === "limit_exceeded") {
    const message = `Cannot put key "${fault.key}": lease ${fault.lease} already holds ` +
      `${fault.keyCount} keys, the limit`;
    return new AspenError(code, message, {
      ...facts,
      limit: LEASE_KEYS_MAX,
      name: "LEASE_KEYS_MAX",
    });
  }
  return new AspenError(code, notFoundMessage(fault), facts);
}

/**
 * The lease fault an error states, read back from its details; null for any other error.
 *
 * @returns a fault that {@linkcode leaseError} turns back into the same error.
 */
export function leaseFaultOf(error: AspenError): LeaseFault | null {
  const { action, lease, key, keyCount } = error.details;
  if (typeof lease !== "number" || typeof action !== "string") return null;
  if (error.code === "lease_not_found" && ID_ACTIONS.includes(action)) {
    return { code: error.code, action: action as "revoke" | "keepAlive" | "read", lease };
  }
  if (typeof key !== "string" || !KEY_ACTIONS.includes(action)) return null;
  if (error.code === "lease_not_found") {
    return { code: error.code, action: action as "attach" | "compare", lease, key };
  }
  if (error.code !== "limit_exceeded" || action !== "attach" || typeof keyCount !== "number") {
    return null;
  }
  return { code: error.code, action, lease, key, keyCount };
}

function notFoundMessage(fault: Extract<LeaseFault, { code: "lease_not_found" }>): string {
  switch (fault.action) {
    case "attach":
      return `Cannot put key "${fault.key}": lease ${fault.lease} does not exist`;
    case "compare":
      return `Cannot compare key "${fault.key}" with lease ${fault.lease}: it does not exist`;
    case "revoke":
      return `Cannot revoke lease ${fault.lease}: it does not exist`;
    case "keepAlive":
      return `Cannot keep lease ${fault.lease} alive: it does not exist`;
    case "read":
      return `Cannot read lease ${fault.lease}: it does not exist`;
  }
}
