/**
 * The members record at run time (members.ts holds the pure record): every node keeps the
 * newest version it has read, dials the members its static `peers` list lacks (the runtime
 * address book), refuses removed members on the peer channel, and writes its own HTTP address
 * into the record. Shard 0's leader seeds the record from `[cluster] peers` when it is missing.
 *
 * The record is read from the local replica of shard 0 when this node hosts one (a serializable
 * read: it may lag, never run ahead), else from shard 0's leader: every MEMBERS_CHECK_MS until
 * the record exists (shard 0's leader seeds it), then when shard 0's meta stamp moves (the node
 * heartbeats carry it, meta_watch.ts, which calls {@linkcode Membership.checkAfterChange}) and
 * at least every MEMBERS_RECHECK_MS whatever the stamps say. An idle cluster therefore does not
 * read the record every second.
 *
 * A node starts from the record it saved last (known-members.json): the addresses of members
 * that joined after its static `peers` list was written are dialed at once, for shard 0's
 * leader may be one of them. When shard 0's leader cannot be reached at all (a member that
 * joined while this node was down leads it, and no saved record names it), the node asks the
 * peers it can reach for the records they read last and adopts the newest: reaching the leader
 * needs its address, and the address is in the record.
 */
import { AspenError } from "../../shard/mod.ts";
import type { Logger } from "../log.ts";
import {
  formatPlacement,
  parsePlacement,
  PLACEMENT_META,
  type PlacementRecord,
} from "./placement_record.ts";
import {
  formatMembersRecord,
  memberOf,
  MEMBERS_META,
  type MembersRecord,
  parseMembersRecord,
  presentMemberIds,
  removedMemberIds,
  seedMembers,
  withHttpAddress,
} from "./members.ts";

/** How often a node reads the members record until it has one, and after a failed read. */
export const MEMBERS_CHECK_MS = 1_000;
/**
 * The longest time between two reads of the members record once a node has one, whatever the
 * meta stamps say (meta_watch.ts): the bound on a change reaching a node that hears no stamp.
 */
export const MEMBERS_RECHECK_MS = 5_000;
/** How long one read or write of the record may take. */
export const MEMBERS_REQUEST_TIMEOUT_MS = 2_000;
/** How many times a read-modify-write of the record retries after losing a race. */
export const MEMBERS_SWAP_ATTEMPTS_MAX = 8;

/** The records as a peer read them last (null: none yet). */
export interface PeerRecords {
  readonly members: string | null;
  readonly placement: string | null;
}

/** How a node reads and swaps meta records (`name`) in shard 0. */
export interface MembersStore {
  /** The record as this node's replica of shard 0 holds it (null: absent or not hosted). */
  readLocal(name: string): string | null;
  /** Whether this node leads shard 0 now. */
  isShardZeroLeader(): boolean;
  /** A linearizable read through shard 0's leader. */
  read(name: string): Promise<string | null>;
  /** A compare-and-swap on shard 0's leader. */
  swap(
    name: string,
    expected: string | null,
    value: string,
  ): Promise<{ isSwapped: boolean; value: string | null }>;
  /**
   * The records as the peers `ids` read them last, one entry per peer that answered (absent:
   * never asked). Failures are left out, never thrown.
   */
  askPeers?(ids: readonly number[]): Promise<readonly PeerRecords[]>;
}

/** What the node applies the record to. */
export interface MembersEffects {
  /** Adds or updates the dial address of a member this node did not know. */
  setPeerAddress(id: number, address: string): void;
  /** Refuses the removed members' ids on the peer channel and stops dialing them. */
  refuse(ids: readonly number[]): void;
  /** Called after every periodic check (the node saves its hosted-shards list). */
  checked?(): Promise<void>;
  /** Keeps the record's text as last read (known-members.json: whom to ask at start). */
  saveRecord?(text: string): Promise<void>;
}

/** The node's view of the members record. */
export class Membership {
  readonly #self: {
    readonly id: number;
    readonly peerAddress: string;
    readonly httpAddress: string;
  };
  readonly #seedPeers: readonly { readonly id: number; readonly address: string }[];
  readonly #store: MembersStore;
  readonly #effects: MembersEffects;
  readonly #logger: Logger;
  #record: MembersRecord | null = null;
  #text: string | null = null;
  #savedText: string | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #isClosed = false;
  #running: Promise<void> | null = null;
  readonly #addresses = new Map<number, string>();
  #refused = "";
  #placement: PlacementRecord = new Map();
  #placementText: string | null = null;

  constructor(options: {
    readonly self: {
      readonly id: number;
      readonly peerAddress: string;
      readonly httpAddress: string;
    };
    readonly peers: readonly { readonly id: number; readonly address: string }[];
    readonly store: MembersStore;
    readonly effects: MembersEffects;
    readonly logger: Logger;
    /** The record's text as this node saved it last (known-members.json), or null. */
    readonly saved?: string | null;
  }) {
    this.#self = options.self;
    this.#seedPeers = options.peers;
    this.#store = options.store;
    this.#effects = options.effects;
    this.#logger = options.logger;
    for (const peer of options.peers) this.#addresses.set(peer.id, peer.address);
    if (options.saved != null) this.#applySaved(options.saved);
  }

  /** The newest record this node has read, or null before the first. */
  get current(): MembersRecord | null {
    return this.#record;
  }

  /** The nodes holding `shard`'s replicas per the placement record, or null when unlisted. */
  placementOf(shard: number): readonly number[] | null {
    return this.#placement.get(shard) ?? null;
  }

  /** The members record's text as last read (null: none yet). */
  get currentText(): string | null {
    return this.#text;
  }

  /** The placement record as last read or written (empty: none yet), parsed once on adoption. */
  get placement(): PlacementRecord {
    return this.#placement;
  }

  /** The placement record's text as last read (null: none yet); the driver swaps it. */
  get placementText(): string | null {
    return this.#placementText;
  }

  /** Takes a placement record this node read or wrote. */
  adoptPlacement(text: string): void {
    if (text === this.#placementText) return;
    this.#placement = parsePlacement(text);
    this.#placementText = text;
  }

  /**
   * Writes the placement record (the rebalance driver, on shard 0's leader) over the version
   * this node read last; on a lost race it adopts the record it found instead.
   *
   * @throws the store's errors.
   */
  async writePlacement(value: string): Promise<void> {
    const swapped = await this.#store.swap(PLACEMENT_META, this.#placementText, value);
    if (swapped.value !== null) this.adoptPlacement(swapped.value);
  }

  /**
   * Changes the placement record by read-modify-write (a shard move lists the voters it chose
   * for its new shards): `change` gets the current record (empty when none) and returns the
   * next. Retries when another writer (the rebalance driver) got in between.
   *
   * @throws {AspenError} `conflict` after MEMBERS_SWAP_ATTEMPTS_MAX lost races, the store's
   * errors; `storage_corrupt` for a malformed record.
   */
  async updatePlacement(change: (record: PlacementRecord) => PlacementRecord): Promise<void> {
    for (let attempt = 0; attempt < MEMBERS_SWAP_ATTEMPTS_MAX; attempt++) {
      const text = await this.#store.read(PLACEMENT_META);
      const value = formatPlacement(change(text === null ? new Map() : parsePlacement(text)));
      if (value === text) {
        this.adoptPlacement(value);
        return;
      }
      const swapped = await this.#store.swap(PLACEMENT_META, text, value);
      if (swapped.isSwapped) {
        this.adoptPlacement(value);
        return;
      }
    }
    throw new AspenError(
      "conflict",
      `Cannot change the placement record: it changed under ${MEMBERS_SWAP_ATTEMPTS_MAX} tries`,
    );
  }

  /**
   * Starts the periodic check: every MEMBERS_CHECK_MS until a read succeeds with a record, then
   * every MEMBERS_RECHECK_MS (the meta watch calls checkAfterChange() between).
   */
  start(): void {
    const periodic = async () => {
      this.#timer = null;
      const isRead = await this.check().then(() => true, (error: unknown) => {
        this.#logger.warn("Cannot check the members record", { reason: reasonOf(error) });
        return false;
      });
      if (this.#isClosed) return;
      const waitMs = isRead && this.#record !== null ? MEMBERS_RECHECK_MS : MEMBERS_CHECK_MS;
      this.#timer = setTimeout(periodic, waitMs);
    };
    this.#timer = setTimeout(periodic, MEMBERS_CHECK_MS);
  }

  /** Stops the periodic check. */
  close(): void {
    this.#isClosed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * A check whose reads start after this call (the meta watch's refresh after shard 0's meta
   * stamp moved): waits for a check under way, which may have read before the change, then runs
   * one. Resolves true when it succeeded; never rejects (a failure is logged).
   */
  async checkAfterChange(): Promise<boolean> {
    await this.#running?.catch(() => {});
    return await this.check().then(() => true, (error: unknown) => {
      this.#logger.warn("Cannot check the members record", { reason: reasonOf(error) });
      return false;
    });
  }

  /** One check: read (or seed) the record, apply it, and report this node's HTTP address. */
  check(): Promise<void> {
    if (this.#running !== null) return this.#running;
    this.#running = this.#check().finally(() => this.#running = null);
    return this.#running;
  }

  /**
   * Reads the record linearizably and adopts it (the rebalance driver and the membership
   * routes start from this).
   *
   * @throws {AspenError} the read's errors; `storage_corrupt` for a malformed record.
   */
  async refresh(): Promise<MembersRecord | null> {
    const text = await this.#store.read(MEMBERS_META);
    if (text !== null) this.#adopt(text);
    return text === null ? null : parseMembersRecord(text);
  }

  /**
   * Changes the record by read-modify-write: `change` gets the current record and returns the
   * next one (the same object: nothing to write). Retries when another writer got in between.
   *
   * @throws {AspenError} `change`'s errors, `conflict` after MEMBERS_SWAP_ATTEMPTS_MAX lost
   * races, the store's errors; `shard_unavailable` when the record does not exist yet.
   */
  async update(change: (record: MembersRecord) => MembersRecord): Promise<MembersRecord> {
    for (let attempt = 0; attempt < MEMBERS_SWAP_ATTEMPTS_MAX; attempt++) {
      const text = await this.#store.read(MEMBERS_META);
      if (text === null) {
        throw new AspenError(
          "shard_unavailable",
          "Cannot change the members record: shard 0 has not recorded it yet; try again",
          { shard: 0 },
        );
      }
      const record = parseMembersRecord(text);
      const next = change(record);
      if (next === record) {
        this.#adopt(text);
        return record;
      }
      const value = formatMembersRecord(next);
      const swapped = await this.#store.swap(MEMBERS_META, text, value);
      if (swapped.isSwapped) {
        this.#adopt(value);
        return next;
      }
    }
    throw new AspenError(
      "conflict",
      `Cannot change the members record: it changed under ${MEMBERS_SWAP_ATTEMPTS_MAX} tries`,
    );
  }

  async #check(): Promise<void> {
    await this.#effects.checked?.();
    const local = this.#store.readLocal(MEMBERS_META);
    if (local === null && this.#store.isShardZeroLeader()) {
      await this.#seed();
      return;
    }
    let text: string | null;
    let placement: string | null;
    try {
      text = local ?? await this.#store.read(MEMBERS_META);
      if (text === null) return;
      placement = this.#store.readLocal(PLACEMENT_META) ?? await this.#store.read(PLACEMENT_META);
    } catch (error) {
      await this.#learnFromPeers();
      throw error;
    }
    if (placement !== null) this.adoptPlacement(placement);
    this.#adopt(text);
    const adopted = this.#text;
    if (adopted !== null && adopted !== this.#savedText && this.#effects.saveRecord) {
      await this.#effects.saveRecord(adopted);
      this.#savedText = adopted;
    }
    const mine = memberOf(parseMembersRecord(text), this.#self.id);
    if (mine !== null && mine.state !== "removed" && mine.httpAddress !== this.#self.httpAddress) {
      await this.update((record) =>
        memberOf(record, this.#self.id) === null
          ? record
          : withHttpAddress(record, this.#self.id, this.#self.httpAddress)
      );
    }
  }

  async #seed(): Promise<void> {
    const seed = formatMembersRecord(seedMembers(this.#seedPeers, this.#self));
    const swapped = await this.#store.swap(MEMBERS_META, null, seed);
    if (swapped.value !== null) this.#adopt(swapped.value);
    if (swapped.isSwapped) {
      this.#logger.info("Recorded the cluster members", {
        members: this.#seedPeers.map((peer) => peer.id).join(",") || String(this.#self.id),
      });
    }
  }

  /**
   * Applies the saved record's addresses and removals (its members were members once; a removed
   * one stays removed), without taking it as the record in force: that is read from shard 0.
   */
  #applySaved(text: string): void {
    try {
      this.#apply(parseMembersRecord(text));
      this.#savedText = text;
    } catch (error) {
      // Only a head start: a damaged copy leaves the static peers to find shard 0's leader.
      this.#logger.warn("Cannot read the saved members record", { reason: reasonOf(error) });
    }
  }

  /**
   * Adopts the newest members record among those the reachable peers read last (and their
   * placement record when this node has none): the addresses of members this node never
   * heard of, shard 0's leader among them. A peer's record is one that shard 0 committed, so
   * taking it only moves this node's view forward.
   */
  async #learnFromPeers(): Promise<void> {
    if (this.#store.askPeers === undefined) return;
    const ids = [...this.#addresses.keys()].filter((id) => id !== this.#self.id);
    const answers = await this.#store.askPeers(ids);
    const before = this.#text;
    for (const answer of answers) {
      try {
        if (answer.members !== null) this.#adopt(answer.members);
        if (answer.placement !== null && this.#placementText === null) {
          this.adoptPlacement(answer.placement);
        }
      } catch (error) {
        this.#logger.warn("Cannot read a peer's members record", { reason: reasonOf(error) });
      }
    }
    if (this.#text !== before) {
      this.#logger.info("Learned the members record from a peer", {
        version: this.#record?.version ?? 0,
      });
    }
  }

  /** Takes `text` when it is newer than the record in force, and applies it. */
  #adopt(text: string): void {
    if (text === this.#text) return;
    const record = parseMembersRecord(text);
    if (this.#record !== null && record.version < this.#record.version) return;
    this.#record = record;
    this.#text = text;
    this.#apply(record);
  }

  #apply(record: MembersRecord): void {
    const present = new Set(presentMemberIds(record));
    for (const member of record.members) {
      if (member.id === this.#self.id || !present.has(member.id)) continue;
      if (member.peerAddress === "" || this.#addresses.get(member.id) === member.peerAddress) {
        continue;
      }
      this.#addresses.set(member.id, member.peerAddress);
      this.#effects.setPeerAddress(member.id, member.peerAddress);
      this.#logger.info("Added a member's peer address", {
        node: member.id,
        address: member.peerAddress,
      });
    }
    const removed = removedMemberIds(record).filter((id) => id !== this.#self.id);
    const key = removed.join(",");
    if (key !== this.#refused) {
      this.#refused = key;
      this.#effects.refuse(removed);
    }
  }
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
