/**
 * A linearizability checker for histories of a key-value store, in the style of Wing and Gong's
 * search with Lowe's memoization (as popularised by Porcupine and Knossos).
 *
 * Each key is a register (value, or absent) with put, get, compare-and-swap and delete.
 * Linearizability is local (Herlihy and Wing): a history is linearizable exactly when each key's
 * sub-history is, so keys are checked one at a time. An operation whose outcome is unknown (a
 * timeout) may have taken effect at any point after its call, or never: it gets a return at
 * infinity and no constraint on its output, and the search may place it last, where it has no
 * visible effect. Operations that definitely failed must be left out of the history.
 */

/** The state of one key: its value, or null when absent. */
export type RegisterState = string | null;

/** One client operation on one key. */
export type KvOperation =
  | { readonly type: "put"; readonly value: string }
  | { readonly type: "get"; readonly result: RegisterState | "unknown" }
  | {
    readonly type: "cas";
    /** The value the key must hold; null means "must be absent". */
    readonly expected: RegisterState;
    readonly value: string;
    readonly succeeded: boolean | "unknown";
  }
  | { readonly type: "delete"; readonly deleted: boolean | "unknown" };

/** A completed or timed-out call by one client, with its wall-clock interval. */
export interface HistoryEntry {
  readonly key: string;
  readonly client: number;
  readonly operation: KvOperation;
  readonly callMs: number;
  /** When the answer arrived; null when the outcome is unknown (a timeout or lost answer). */
  readonly returnMs: number | null;
}

/** The verdict for a whole history. */
export interface CheckResult {
  readonly isLinearizable: boolean;
  /** Keys whose sub-history is not linearizable, each with a short description. */
  readonly violations: readonly { readonly key: string; readonly detail: string }[];
  readonly operationsChecked: number;
}

/** The most search states explored per key before the checker gives up (and says so). */
export const SEARCH_STATES_MAX = 5_000_000;

/**
 * Checks every key's sub-history.
 *
 * @param initial the state of every key before the history began (absent by default).
 */
export function checkHistory(
  history: readonly HistoryEntry[],
  initial: (key: string) => RegisterState = () => null,
): CheckResult {
  const byKey = new Map<string, HistoryEntry[]>();
  for (const entry of history) {
    const list = byKey.get(entry.key) ?? [];
    list.push(entry);
    byKey.set(entry.key, list);
  }
  const violations: { key: string; detail: string }[] = [];
  for (const [key, entries] of byKey) {
    const verdict = checkRegister(entries, initial(key));
    if (verdict !== null) violations.push({ key, detail: verdict });
  }
  return { isLinearizable: violations.length === 0, violations, operationsChecked: history.length };
}

/** The outcome of applying an operation to a state: allowed or not, and the next state. */
export function stepRegister(
  state: RegisterState,
  operation: KvOperation,
): { readonly isAllowed: boolean; readonly next: RegisterState } {
  switch (operation.type) {
    case "put":
      return { isAllowed: true, next: operation.value };
    case "get":
      return {
        isAllowed: operation.result === "unknown" || operation.result === state,
        next: state,
      };
    case "cas": {
      const matches = state === operation.expected;
      const isAllowed = operation.succeeded === "unknown" || operation.succeeded === matches;
      return { isAllowed, next: matches ? operation.value : state };
    }
    case "delete": {
      const existed = state !== null;
      const isAllowed = operation.deleted === "unknown" || operation.deleted === existed;
      return { isAllowed, next: null };
    }
  }
}

interface Event {
  readonly isCall: boolean;
  readonly id: number;
  readonly timeMs: number;
  match: Event | null;
  previous: Event | null;
  next: Event | null;
}

/** Checks one register's history; returns null when linearizable, else a description. */
function checkRegister(entries: readonly HistoryEntry[], initial: RegisterState): string | null {
  const head = buildEventList(entries);
  const linearized = new Uint8Array(entries.length);
  const seen = new Set<string>();
  const calls: { event: Event; state: RegisterState }[] = [];
  let state = initial;
  let event = head.next;
  let explored = 0;
  while (head.next !== null) {
    if (++explored > SEARCH_STATES_MAX) {
      return `search gave up after ${SEARCH_STATES_MAX} states (history too concurrent)`;
    }
    if (event === null) return "internal: ran past the end of the event list";
    if (event.isCall) {
      const step = stepRegister(state, entries[event.id]!.operation);
      if (step.isAllowed) {
        linearized[event.id] = 1;
        const fingerprint = `${linearized.join("")}|${JSON.stringify(step.next)}`;
        if (!seen.has(fingerprint)) {
          seen.add(fingerprint);
          calls.push({ event, state });
          state = step.next;
          lift(event);
          event = head.next;
          continue;
        }
        linearized[event.id] = 0;
      }
      event = event.next;
      continue;
    }
    const top = calls.pop();
    if (top === undefined) return describeFailure(entries, event);
    linearized[top.event.id] = 0;
    state = top.state;
    unlift(top.event);
    event = top.event.next;
  }
  return null;
}

/** Call and return events in time order (calls before returns at equal times), linked. */
function buildEventList(entries: readonly HistoryEntry[]): Event {
  const events: Event[] = [];
  entries.forEach((entry, id) => {
    const call: Event = {
      isCall: true,
      id,
      timeMs: entry.callMs,
      match: null,
      previous: null,
      next: null,
    };
    const ret: Event = {
      isCall: false,
      id,
      timeMs: entry.returnMs ?? Number.POSITIVE_INFINITY,
      match: call,
      previous: null,
      next: null,
    };
    call.match = ret;
    events.push(call, ret);
  });
  events.sort((a, b) => a.timeMs - b.timeMs || Number(b.isCall) - Number(a.isCall));
  const head: Event = {
    isCall: false,
    id: -1,
    timeMs: -1,
    match: null,
    previous: null,
    next: null,
  };
  let tail = head;
  for (const event of events) {
    tail.next = event;
    event.previous = tail;
    tail = event;
  }
  return head;
}

/** Removes a call and its return from the list (the call is linearized). */
function lift(call: Event): void {
  call.previous!.next = call.next;
  if (call.next !== null) call.next.previous = call.previous;
  const ret = call.match!;
  ret.previous!.next = ret.next;
  if (ret.next !== null) ret.next.previous = ret.previous;
}

/** Puts a lifted call and its return back where they were. */
function unlift(call: Event): void {
  const ret = call.match!;
  ret.previous!.next = ret;
  if (ret.next !== null) ret.next.previous = ret;
  call.previous!.next = call;
  if (call.next !== null) call.next.previous = call;
}

function describeFailure(entries: readonly HistoryEntry[], event: Event): string {
  const entry = entries[event.id]!;
  return `no linearization explains ${JSON.stringify(entry.operation)} by client ` +
    `${entry.client} in [${entry.callMs}, ${entry.returnMs ?? "unknown"}] ms`;
}
