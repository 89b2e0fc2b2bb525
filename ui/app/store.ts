/**
 * The console's state: the session (token), the status history, the connection's health and
 * the events feed, as Preact signals, plus the poller that keeps them current.
 *
 * The poller asks for `/v1/cluster/status` once per {@linkcode POLL_INTERVAL_MS}, never two
 * requests at once. Each answer is checked, stamped and appended to a bounded history; events
 * are derived from it and the one before. Failures are counted: before any data arrived they
 * are an error state; after, {@linkcode STALE_AFTER_FAILURES} in a row mark the data on screen
 * stale (kept, never cleared). A 401 ends the session. Everything with a side effect (fetch,
 * timers, clock, session storage) is passed in, so tests drive the store without a browser.
 *
 * ```text
 *            signIn(token)            200              401 (any time)
 *  signed-out ----------> checking --------> signed-in ---------------> signed-out
 *      ^                     |  401 / error
 *      +---------------------+
 * connection (while signed in):
 *   loading --ok--> live --fail x STALE_AFTER_FAILURES--> stale --ok--> live
 *   loading --fail--> error --ok--> live
 * ```
 */
import { computed, type ReadonlySignal, signal } from "@preact/signals";
import type { ClusterStatus } from "../../api/mod.ts";
import { ApiError, type ApiRequest, type ApiTransport, requestJson } from "./api.ts";
import { type ConsoleEvent, deriveEvents, type EventDraft } from "./events.ts";
import {
  EVENTS_MAX,
  HISTORY_SAMPLES_MAX,
  POLL_INTERVAL_MS,
  STALE_AFTER_FAILURES,
} from "./limits.ts";
import type { Sample } from "./rates.ts";
import { parseClusterStatus } from "./status.ts";

/** Where the token is kept: the tab's session storage, gone when the tab closes. */
export const TOKEN_STORAGE_KEY = "aspen.console.token";

/** The session: whether the console has a token that the node accepts. */
export type Session =
  | { readonly kind: "signed-out"; readonly message: string | null }
  | { readonly kind: "checking" }
  | { readonly kind: "signed-in"; readonly token: string };

/** The health of the console's link to its node. */
export type Connection =
  | { readonly kind: "loading" }
  | { readonly kind: "live"; readonly lastOkAtMs: number }
  | {
    readonly kind: "stale";
    readonly lastOkAtMs: number;
    readonly failures: number;
    readonly error: string;
  }
  | { readonly kind: "error"; readonly failures: number; readonly error: string };

/** The side effects the store needs. */
export interface StoreDeps {
  readonly transport: ApiTransport;
  readonly storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  readonly nowMs: () => number;
  /** Runs `callback` once after `delayMs`; returns a function that cancels it. */
  readonly setTimer: (callback: () => void, delayMs: number) => () => void;
}

/** The console's state and actions; see the module doc. */
export class ConsoleStore {
  readonly session = signal<Session>({ kind: "signed-out", message: null });
  readonly connection = signal<Connection>({ kind: "loading" });
  /** Oldest first, at most {@linkcode HISTORY_SAMPLES_MAX}. */
  readonly history = signal<readonly Sample[]>([]);
  /** Newest first, at most {@linkcode EVENTS_MAX}. */
  readonly events = signal<readonly ConsoleEvent[]>([]);
  /** The wall clock at the last poll, for "n seconds ago" texts. */
  readonly clockMs = signal(0);
  readonly latest: ReadonlySignal<Sample | null> = computed(() => {
    const history = this.history.value;
    return history.length === 0 ? null : history[history.length - 1]!;
  });
  readonly #deps: StoreDeps;
  #generation = 0;
  #cancelTimer: (() => void) | null = null;
  #nextEventId = 1;
  /** Failed polls in a row. */
  #failures = 0;

  constructor(deps: StoreDeps) {
    this.#deps = deps;
    this.clockMs.value = deps.nowMs();
  }

  /** Resumes a session whose token is in session storage; otherwise stays signed out. */
  resume(): void {
    const token = this.#deps.storage?.getItem(TOKEN_STORAGE_KEY) ?? null;
    if (token === null) return;
    this.session.value = { kind: "signed-in", token };
    this.#startPolling();
  }

  /** Checks `token` against the node and, if it is accepted, starts the session. */
  async signIn(token: string): Promise<void> {
    this.#stopPolling();
    this.session.value = { kind: "checking" };
    try {
      const body = await requestJson(this.#deps.transport, {
        method: "GET",
        path: "/v1/cluster/status",
        token,
      });
      const status = parseClusterStatus(body);
      this.#deps.storage?.setItem(TOKEN_STORAGE_KEY, token);
      this.session.value = { kind: "signed-in", token };
      this.#accept(status);
      this.#startPolling();
    } catch (error) {
      this.session.value = { kind: "signed-out", message: signInMessage(error) };
    }
  }

  /** Ends the session: forgets the token and every number it showed. */
  signOut(message: string | null = null): void {
    this.#stopPolling();
    this.#deps.storage?.removeItem(TOKEN_STORAGE_KEY);
    this.session.value = { kind: "signed-out", message };
    this.history.value = [];
    this.events.value = [];
    this.connection.value = { kind: "loading" };
    this.#failures = 0;
  }

  /**
   * Sends an authenticated request for the views (key browser, actions). A 401 ends the
   * session.
   *
   * @throws {ApiError} for every failure, after handling a 401.
   */
  async request(request: Omit<ApiRequest, "token">): Promise<unknown> {
    const session = this.session.value;
    const token = session.kind === "signed-in" ? session.token : null;
    try {
      return await requestJson(this.#deps.transport, { ...request, token });
    } catch (error) {
      if (error instanceof ApiError && error.httpStatus === 401) {
        this.signOut("The node no longer accepts this token: sign in again");
      }
      throw error;
    }
  }

  /** Stops polling for good (the page is going away, or a test is done). */
  dispose(): void {
    this.#stopPolling();
  }

  #startPolling(): void {
    this.#stopPolling();
    const generation = ++this.#generation;
    this.#schedule(generation, this.history.value.length === 0 ? 0 : POLL_INTERVAL_MS);
  }

  #stopPolling(): void {
    this.#generation++;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
  }

  #schedule(generation: number, delayMs: number): void {
    this.#cancelTimer = this.#deps.setTimer(() => {
      this.#cancelTimer = null;
      this.#poll(generation).catch((error) => this.#fail(error));
    }, delayMs);
  }

  async #poll(generation: number): Promise<void> {
    try {
      const body = await this.request({ method: "GET", path: "/v1/cluster/status" });
      if (generation !== this.#generation) return;
      this.#accept(parseClusterStatus(body));
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#fail(error);
    }
    if (generation === this.#generation) this.#schedule(generation, POLL_INTERVAL_MS);
  }

  #accept(status: ClusterStatus): void {
    const nowMs = this.#deps.nowMs();
    this.clockMs.value = nowMs;
    const history = this.history.value;
    const previous = history.length === 0 ? null : history[history.length - 1]!;
    const sample: Sample = { atMs: status.generatedAtMs ?? nowMs, status };
    // A status stamped with the same time as the last one is the same snapshot served again
    // (a cache, a frozen node): it replaces the last sample, so no zero-length step dilutes rates.
    const isRepeat = previous !== null && previous.atMs === sample.atMs;
    const next = isRepeat ? [...history.slice(0, -1), sample] : [...history, sample];
    this.history.value = next.length > HISTORY_SAMPLES_MAX
      ? next.slice(next.length - HISTORY_SAMPLES_MAX)
      : next;
    const drafts: EventDraft[] = [];
    const connection = this.connection.value;
    if (previous === null) drafts.push(connectedDraft(status));
    if (connection.kind === "stale") drafts.push(restoredDraft(status, nowMs, connection));
    if (previous !== null) drafts.push(...deriveEvents(previous.status, status));
    this.#record(drafts, nowMs);
    this.connection.value = { kind: "live", lastOkAtMs: nowMs };
    this.#failures = 0;
  }

  #fail(error: unknown): void {
    const nowMs = this.#deps.nowMs();
    this.clockMs.value = nowMs;
    this.#failures++;
    const failures = this.#failures;
    const message = error instanceof Error ? error.message : String(error);
    const connection = this.connection.value;
    if (connection.kind === "loading" || connection.kind === "error") {
      this.connection.value = { kind: "error", failures, error: message };
      return;
    }
    if (failures < STALE_AFTER_FAILURES) return;
    if (connection.kind === "live") this.#record([lostDraft(this.latest.value, message)], nowMs);
    this.connection.value = {
      kind: "stale",
      lastOkAtMs: connection.lastOkAtMs,
      failures,
      error: message,
    };
  }

  #record(drafts: readonly EventDraft[], atMs: number): void {
    if (drafts.length === 0) return;
    const stamped = drafts.map((draft) => ({ ...draft, id: this.#nextEventId++, atMs }));
    const events = [...stamped.reverse(), ...this.events.value];
    this.events.value = events.length > EVENTS_MAX ? events.slice(0, EVENTS_MAX) : events;
  }
}

function signInMessage(error: unknown): string {
  if (error instanceof ApiError && error.httpStatus === 401) {
    return "The node rejected this token: check it and try again";
  }
  if (error instanceof ApiError && error.httpStatus === 403) {
    return "This token may not read the cluster status";
  }
  const reason = error instanceof Error ? error.message : String(error);
  return `Cannot sign in: ${reason}`;
}

function connectedDraft(status: ClusterStatus): EventDraft {
  const message = `Connected to node ${status.node} of cluster "${status.clusterId}"`;
  return { kind: "connected", severity: "info", shard: null, node: status.node, message };
}

function restoredDraft(
  status: ClusterStatus,
  nowMs: number,
  connection: Extract<Connection, { kind: "stale" }>,
): EventDraft {
  const seconds = Math.round((nowMs - connection.lastOkAtMs) / 1_000);
  const message = `Node ${status.node} answers again after ${seconds} s without data`;
  return { kind: "connection-restored", severity: "info", shard: null, node: status.node, message };
}

function lostDraft(latest: Sample | null, reason: string): EventDraft {
  const node = latest === null ? null : latest.status.node;
  const who = node === null ? "The node" : `Node ${node}`;
  const message = `${who} stopped answering: ${reason}`;
  return { kind: "connection-lost", severity: "critical", shard: null, node, message };
}
