/**
 * The linearizability checker: accepts linearizable histories (sequential, overlapping, with
 * unknown outcomes), rejects the classic anomalies (stale read, lost write, wrong CAS success,
 * read of a value never written, a delete that reports the wrong count), and agrees with a
 * generator that produces histories from a real atomic register with seeded random timing.
 */
import { deepEqual, equal, match } from "node:assert/strict";
import { checkHistory, type HistoryEntry, type KvOperation } from "./linearizability.ts";

function op(
  client: number,
  callMs: number,
  returnMs: number | null,
  operation: KvOperation,
  key = "k",
): HistoryEntry {
  return { key, client, callMs, returnMs, operation };
}

const put = (value: string): KvOperation => ({ type: "put", value });
const get = (result: string | null | "unknown"): KvOperation => ({ type: "get", result });
const cas = (expected: string | null, value: string, succeeded: boolean | "unknown") =>
  ({ type: "cas", expected, value, succeeded }) as const;
const del = (deleted: boolean | "unknown"): KvOperation => ({ type: "delete", deleted });

Deno.test("checkHistory() accepts linearizable histories", async (t) => {
  const cases: [string, HistoryEntry[]][] = [
    ["empty", []],
    ["sequential", [op(1, 0, 1, put("a")), op(1, 2, 3, get("a")), op(2, 4, 5, del(true))]],
    ["read of the initial absence", [op(1, 0, 1, get(null))]],
    [
      "overlapping put and get may see either value",
      [op(1, 0, 10, put("a")), op(2, 1, 2, get(null)), op(3, 3, 4, get("a"))],
    ],
    [
      "a timed-out put that never happened",
      [op(1, 0, null, put("a")), op(2, 5, 6, get(null)), op(2, 7, 8, get(null))],
    ],
    [
      "a timed-out put that happened late",
      [op(1, 0, null, put("a")), op(2, 5, 6, get(null)), op(2, 7, 8, get("a"))],
    ],
    [
      "a CAS with unknown outcome",
      [op(1, 0, 1, put("a")), op(2, 2, null, cas("a", "b", "unknown")), op(3, 9, 10, get("b"))],
    ],
    [
      "concurrent CAS: exactly one wins",
      [op(1, 0, 1, put("x")), op(2, 2, 5, cas("x", "y", true)), op(3, 2, 5, cas("x", "z", false))],
    ],
    [
      "keys are independent",
      [op(1, 0, 1, put("a"), "k1"), op(1, 2, 3, get(null), "k2"), op(1, 4, 5, get("a"), "k1")],
    ],
  ];
  for (const [name, history] of cases) {
    await t.step(name, () => {
      const result = checkHistory(history);
      deepEqual(result.violations, []);
      equal(result.isLinearizable, true);
    });
  }
});

Deno.test("checkHistory() rejects classic anomalies", async (t) => {
  const cases: [string, HistoryEntry[]][] = [
    ["stale read", [op(1, 0, 1, put("a")), op(2, 2, 3, get(null))]],
    ["lost write", [op(1, 0, 1, put("a")), op(1, 2, 3, put("b")), op(2, 4, 5, get("a"))]],
    ["wrong CAS success", [op(1, 0, 1, put("a")), op(2, 2, 3, cas("b", "c", true))]],
    ["wrong CAS failure", [op(1, 0, 1, put("a")), op(2, 2, 3, cas("a", "c", false))]],
    ["a value never written", [op(1, 0, 1, put("a")), op(2, 2, 3, get("zzz"))]],
    [
      "a value seen and then unseen",
      [op(1, 0, null, put("a")), op(2, 5, 6, get("a")), op(2, 7, 8, get(null))],
    ],
    ["delete of an absent key reports one", [op(1, 0, 1, del(true))]],
    ["read after a delete sees the value", [
      op(1, 0, 1, put("a")),
      op(1, 2, 3, del(true)),
      op(2, 4, 5, get("a")),
    ]],
    ["both concurrent CASes win", [
      op(1, 0, 1, put("x")),
      op(2, 2, 5, cas("x", "y", true)),
      op(3, 2, 5, cas("x", "z", true)),
    ]],
  ];
  for (const [name, history] of cases) {
    await t.step(name, () => {
      const result = checkHistory(history);
      equal(result.isLinearizable, false);
      equal(result.violations[0]?.key, "k");
      match(result.violations[0]!.detail, /no linearization explains/);
    });
  }
});

/** A seeded generator of histories from a real atomic register with random timing. */
function generate(seed: number, options: { corrupt: boolean }): HistoryEntry[] {
  let state = seed >>> 0 || 1;
  const next = (bound: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % bound;
  };
  const registers = new Map<string, string | null>();
  const history: HistoryEntry[] = [];
  let clock = 0;
  for (let i = 0; i < 60; i++) {
    const key = `k${next(3)}`;
    const current = registers.get(key) ?? null;
    const callMs = clock + next(5);
    const effectMs = callMs + 1 + next(5);
    const returnMs = next(10) === 0 ? null : effectMs + next(5);
    clock = effectMs;
    const choice = next(4);
    let operation: KvOperation;
    if (choice === 0) {
      operation = put(`v${i}`);
      registers.set(key, `v${i}`);
    } else if (choice === 1) {
      operation = get(returnMs === null ? "unknown" : current);
    } else if (choice === 2) {
      const expected = next(2) === 0 ? current : "nope";
      const succeeded = expected === current;
      if (succeeded) registers.set(key, `c${i}`);
      operation = cas(expected, `c${i}`, returnMs === null ? "unknown" : succeeded);
    } else {
      operation = del(returnMs === null ? "unknown" : current !== null);
      registers.set(key, null);
    }
    history.push(op(next(5), callMs, returnMs, operation, key));
  }
  if (options.corrupt) {
    history.push(op(99, clock + 100, clock + 101, get("never-written"), "k0"));
  }
  return history;
}

Deno.test("checkHistory() agrees with histories generated from an atomic register", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const good = checkHistory(generate(seed, { corrupt: false }));
    deepEqual(good.violations, [], `seed ${seed} should be linearizable`);
    const bad = checkHistory(generate(seed, { corrupt: true }));
    equal(bad.isLinearizable, false, `seed ${seed} with a corrupt read should not be`);
  }
});
