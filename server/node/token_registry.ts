/**
 * This node's view of the client tokens: the bootstrap tokens of the credentials file, fixed
 * for the node's life, plus a copy of the runtime tokens (server/runtime_tokens.ts), refreshed
 * from the replicated record, and the create and revoke operations that change that record.
 *
 * Bounds on a change reaching every node (README, "Security"):
 * - The node that made the change uses it at once.
 * - Every node reads the record again when shard 0's meta records change (meta_watch.ts: a
 *   stamp on the node heartbeats, every 250 ms), so a revoked token is refused everywhere
 *   within one node heartbeat plus one read of shard 0, while the node reaches a node that
 *   applied the revoke (shard 0's leader applies it before it answers).
 * - Whatever the stamps say, every node reads the record at least every
 *   {@linkcode TOKENS_REFRESH_MS}, and every {@linkcode TOKENS_RETRY_MS} after a failed read.
 * - A node whose copy is older than {@linkcode TOKENS_STALE_MS_MAX} (it cannot reach shard 0's
 *   leader) refuses every runtime token with 503 `shard_unavailable` rather than trust a list
 *   that may miss a revocation; bootstrap tokens keep working.
 * - A runtime token this node does not know yet (created through another node a moment ago)
 *   makes it read the record again before refusing, so a new token works at once on every
 *   node; such reads are at least {@linkcode TOKENS_MISS_REFRESH_MS_MIN} apart (a wrong token
 *   waits up to that long for its 401).
 */
import { timingSafeEqual } from "node:crypto";
import { assert } from "../../raft/mod.ts";
import { AspenError } from "../../shard/mod.ts";
import {
  type ClusterCredentials,
  createTokenVerifier,
  generateToken,
  hashToken,
  isTokenShaped,
  type RandomBytes,
  toHex,
  type TokenRole,
  VERIFIED_TOKENS_MAX,
} from "../auth.ts";
import type { Logger } from "../log.ts";
import {
  addToken,
  decodeRuntimeTokens,
  encodeRuntimeTokens,
  isExpired,
  removeToken,
  type RuntimeToken,
  type TokenCreateRequest,
  type TokenView,
  tokenView,
} from "../runtime_tokens.ts";

/**
 * The longest time between two reads of the runtime token record, whatever the meta stamps
 * say (meta_watch.ts): the bound on a revoke reaching a node that hears no stamp of it.
 */
export const TOKENS_REFRESH_MS = 5_000;
/** The time between two reads of the record while reading fails. */
export const TOKENS_RETRY_MS = 1_000;
/**
 * The deadline of one read of the record (short of REQUEST_TIMEOUT_MS: a node that closes
 * waits for a refresh under way).
 */
export const TOKENS_READ_TIMEOUT_MS = 2_000;
/** How old a node's copy of the runtime tokens may be before it refuses them all. */
export const TOKENS_STALE_MS_MAX = 10_000;
/** The least time between two reads of the record caused by unknown tokens. */
export const TOKENS_MISS_REFRESH_MS_MIN = 250;
/** The most compare-and-swap rounds one create or revoke makes before giving up. */
export const TOKEN_CHANGE_ATTEMPTS_MAX = 8;

/** Where the runtime token record lives (shard 0's meta record, through the router). */
export interface TokenRecordStore {
  /** A linearizable read of the record; null when absent. */
  read(): Promise<string | null>;
  /** Writes `value` if the record holds `expected`; returns what it holds afterwards. */
  swap(
    expected: string | null,
    value: string,
  ): Promise<{ isSwapped: boolean; value: string | null }>;
}

/** The outcome of checking a token. */
export type TokenVerdict =
  | { readonly kind: "accepted"; readonly role: TokenRole }
  | { readonly kind: "expired"; readonly expiresAtMs: number }
  | { readonly kind: "unknown" };

/** What a registry needs. */
export interface TokenRegistryOptions {
  readonly credentials: ClusterCredentials;
  readonly store: TokenRecordStore;
  /** Monotonic milliseconds (refresh timing). */
  readonly nowMs: () => number;
  /** Wall-clock milliseconds (creation and expiry times, shared by every node). */
  readonly wallMs: () => number;
  readonly randomBytes: RandomBytes;
  /** Waits `ms` milliseconds (a timer in production; the tests' clock in unit tests). */
  readonly sleep: (ms: number) => Promise<void>;
  readonly logger: Logger;
}

/** A created token: its view and the token itself, which is shown this once. */
export interface CreatedToken extends TokenView {
  readonly token: string;
}

/** The node's tokens. */
export class TokenRegistry {
  readonly #options: TokenRegistryOptions;
  readonly #verifyBootstrap: (token: string) => TokenRole | null;
  #tokens: readonly RuntimeToken[] = [];
  #text: string | null = null;
  /** Accepted runtime tokens, by token; cleared whenever the list changes. */
  readonly #accepted = new Map<string, RuntimeToken>();
  /** When the last successful read started (monotonic); null before the first. */
  #refreshedAtMs: number | null = null;
  #missRefreshAtMs = -Infinity;
  #missRefresh: Promise<void> | null = null;
  #refreshing: Promise<boolean> | null = null;
  #isFailing = false;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #isStarted = false;

  constructor(options: TokenRegistryOptions) {
    this.#options = options;
    this.#verifyBootstrap = createTokenVerifier(options.credentials);
  }

  /**
   * Starts the periodic refresh: a read now, then one whenever the copy is
   * {@linkcode TOKENS_REFRESH_MS} old, or {@linkcode TOKENS_RETRY_MS} after a failed read.
   */
  start(): void {
    if (this.#isStarted) return;
    this.#isStarted = true;
    void this.#periodicRead();
  }

  /** Stops refreshing and waits for a read under way. */
  async close(): Promise<void> {
    this.#isStarted = false;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#missRefresh;
    await this.#refreshing;
  }

  /**
   * Reads the record and replaces the copy (one read at a time; a caller during a read waits
   * for it). A failed read is logged once per run of failures and leaves the copy as it was.
   * Resolves true when the read succeeded.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#read().finally(() => this.#refreshing = null);
    return this.#refreshing;
  }

  /**
   * A read of the record that starts after this call (a read under way may have started before
   * the change that caused this call, so it is let finish first); resolves true when it
   * succeeded. The meta watch calls it when shard 0's meta records changed.
   */
  async refreshAfterChange(): Promise<boolean> {
    await this.#refreshing;
    return await this.refresh();
  }

  /**
   * Checks a token: a bootstrap token, else a runtime token.
   *
   * @throws {AspenError} `shard_unavailable` for a token that may be a runtime token while
   * this node's copy is older than {@linkcode TOKENS_STALE_MS_MAX}.
   */
  async verify(token: string): Promise<TokenVerdict> {
    const role = this.#verifyBootstrap(token);
    if (role !== null) return { kind: "accepted", role };
    if (!isTokenShaped(token)) return { kind: "unknown" };
    let found = this.#find(token);
    if (found === null) {
      await this.#refreshOnMiss();
      found = this.#find(token);
    }
    this.#checkFresh();
    if (found === null) return { kind: "unknown" };
    if (isExpired(found, this.#options.wallMs())) {
      return { kind: "expired", expiresAtMs: found.expiresAtMs! };
    }
    return { kind: "accepted", role: found.role };
  }

  /** The role of a token from what this node knows now, without reading; null if refused. */
  cachedRole(token: string): TokenRole | null {
    const role = this.#verifyBootstrap(token);
    if (role !== null || !isTokenShaped(token) || this.#staleMs() > TOKENS_STALE_MS_MAX) {
      return role;
    }
    const found = this.#find(token);
    if (found === null || isExpired(found, this.#options.wallMs())) return null;
    return found.role;
  }

  /** Every runtime token (after a fresh read), without hashes. */
  async list(): Promise<TokenView[]> {
    const startedAtMs = this.#options.nowMs();
    this.#use(await this.#options.store.read(), startedAtMs);
    const nowMs = this.#options.wallMs();
    return this.#tokens.map((token) => tokenView(token, nowMs));
  }

  /**
   * Creates a token and records it cluster-wide.
   *
   * @throws {AspenError} `limit_exceeded` (RUNTIME_TOKENS_MAX), `too_many_requests` when the
   * record kept changing under it, or the router's errors.
   */
  async create(request: TokenCreateRequest): Promise<CreatedToken> {
    const token = generateToken(this.#options.randomBytes);
    const createdAtMs = this.#options.wallMs();
    const record: RuntimeToken = {
      id: toHex(this.#options.randomBytes(8)),
      hash: hashToken(token),
      role: request.role,
      name: request.name,
      createdAtMs,
      expiresAtMs: request.ttlSeconds === null ? null : createdAtMs + request.ttlSeconds * 1000,
    };
    await this.#change("create a token", (tokens) => addToken(tokens, record, createdAtMs));
    return { ...tokenView(record, createdAtMs), token };
  }

  /**
   * Revokes the token `id` cluster-wide.
   *
   * @throws {AspenError} `token_not_found`, `too_many_requests`, or the router's errors.
   */
  async revoke(id: string): Promise<TokenView> {
    const before = await this.#change(`revoke token "${id}"`, (tokens) => removeToken(tokens, id));
    const revoked = before.find((token) => token.id === id);
    assert(revoked !== undefined, "TokenRegistry.revoke: the removed token was in the list");
    return tokenView(revoked, this.#options.wallMs());
  }

  /**
   * Read-modify-write of the record with compare-and-swap, retried on a concurrent change;
   * returns the list the change was made to.
   */
  async #change(
    action: string,
    next: (tokens: readonly RuntimeToken[]) => RuntimeToken[],
  ): Promise<readonly RuntimeToken[]> {
    let current = await this.#options.store.read();
    for (let attempt = 0; attempt < TOKEN_CHANGE_ATTEMPTS_MAX; attempt++) {
      const before = decodeRuntimeTokens(current);
      const startedAtMs = this.#options.nowMs();
      const result = await this.#options.store.swap(current, encodeRuntimeTokens(next(before)));
      this.#use(result.value, startedAtMs);
      if (result.isSwapped) return before;
      current = result.value;
    }
    throw new AspenError(
      "too_many_requests",
      `Cannot ${action}: the token list changed ${TOKEN_CHANGE_ATTEMPTS_MAX} times under ` +
        "this change; try again",
    );
  }

  async #read(): Promise<boolean> {
    const startedAtMs = this.#options.nowMs();
    try {
      this.#use(await this.#options.store.read(), startedAtMs);
      if (this.#isFailing) this.#options.logger.info("Reading the runtime tokens works again");
      this.#isFailing = false;
      return true;
    } catch (error) {
      if (!this.#isFailing) {
        this.#options.logger.warn("Cannot read the runtime tokens", {
          reason: error instanceof Error ? error.message : String(error),
        });
      }
      this.#isFailing = true;
      return false;
    }
  }

  /**
   * The periodic read: reads when the copy is TOKENS_REFRESH_MS old (reads for other reasons
   * meanwhile put it off), then sets the timer for the next one.
   */
  async #periodicRead(): Promise<void> {
    this.#timer = null;
    if (!this.#isStarted) return;
    const isDue = this.#isFailing || this.#staleMs() >= TOKENS_REFRESH_MS;
    const isRead = isDue ? await this.refresh() : true;
    if (!this.#isStarted) return;
    const waitMs = isRead
      ? Math.max(TOKENS_RETRY_MS, TOKENS_REFRESH_MS - this.#staleMs())
      : TOKENS_RETRY_MS;
    this.#timer = setTimeout(() => void this.#periodicRead(), waitMs);
  }

  /**
   * Takes the record's text, read by a request that started at `startedAtMs` (a linearizable
   * read or a swap: the record as of then or later), as the copy.
   */
  #use(text: string | null, startedAtMs: number): void {
    if (text !== this.#text) {
      this.#tokens = decodeRuntimeTokens(text);
      this.#text = text;
      this.#accepted.clear();
    }
    this.#refreshedAtMs = Math.max(this.#refreshedAtMs ?? startedAtMs, startedAtMs);
  }

  /** The runtime token whose hash matches, compared in constant time; remembered once found. */
  #find(token: string): RuntimeToken | null {
    const known = this.#accepted.get(token);
    if (known !== undefined) return known;
    const presented = Buffer.from(hashToken(token), "hex");
    let found: RuntimeToken | null = null;
    for (const record of this.#tokens) {
      const stored = Buffer.from(record.hash, "hex");
      if (stored.length === presented.length && timingSafeEqual(stored, presented)) {
        found = record;
      }
    }
    if (found === null) return null;
    if (this.#accepted.size >= VERIFIED_TOKENS_MAX) this.#accepted.clear();
    this.#accepted.set(token, found);
    return found;
  }

  /**
   * A read of the record that starts after this call, for a token not found: it waits until
   * {@linkcode TOKENS_MISS_REFRESH_MS_MIN} has passed since the last such read, and every miss
   * meanwhile shares it. So a stream of wrong tokens costs shard 0 a few reads per second, each
   * wrong token waits a little, and a token created a moment ago on another node is found.
   */
  #refreshOnMiss(): Promise<void> {
    this.#missRefresh ??= (async () => {
      // A read under way may have started before the token was created: let it finish first.
      await this.#refreshing;
      const waitMs = this.#missRefreshAtMs + TOKENS_MISS_REFRESH_MS_MIN - this.#options.nowMs();
      if (waitMs > 0) await this.#options.sleep(waitMs);
      this.#missRefreshAtMs = this.#options.nowMs();
      await this.refresh();
    })().finally(() => this.#missRefresh = null);
    return this.#missRefresh;
  }

  #staleMs(): number {
    return this.#refreshedAtMs === null ? Infinity : this.#options.nowMs() - this.#refreshedAtMs;
  }

  /**
   * @throws {AspenError} `shard_unavailable` when the copy is too old to trust.
   */
  #checkFresh(): void {
    const staleMs = this.#staleMs();
    if (staleMs <= TOKENS_STALE_MS_MAX) return;
    throw new AspenError(
      "shard_unavailable",
      "Cannot check the token: this node could not read the cluster's token list " +
        (this.#refreshedAtMs === null
          ? "since it started"
          : `for ${Math.round(staleMs / 1000)} s (the limit is ${TOKENS_STALE_MS_MAX / 1000} s)`) +
        "; shard 0 may have no leader",
      { shard: 0 },
    );
  }
}
