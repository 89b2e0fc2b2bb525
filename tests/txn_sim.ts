/**
 * The seeded simulation of cross-shard transactions (issue 13): bank accounts on several real
 * shard state machines, clients that move money by etcd-style and optimistic cross-shard
 * transactions and by single-shard transactions, read every account in one read-only
 * transaction, and put tag keys that the transfers lock too; coordinators crash at any step,
 * and the network delays, duplicates and loses calls (txn_sim_world.ts).
 *
 * After the workload every fault stops, the clock passes every transaction's deadline, and
 * pushers resolve whatever intents are left. Then the checks: the total is unchanged, every
 * read-only transaction saw it, no intent is left, every record is committed or aborted, each
 * committed transaction ran on all of its participants and each aborted one on none, and every
 * answer a coordinator gave agrees with its record (a success is committed, a conflict is not).
 *
 * One-round commits: a coordinator answers as soon as every participant prepared, and resolves
 * after its reply. So the checks also hold every reply to what follows it: the record of a
 * replied transaction ends committed with the branch the reply named, the writes of each
 * participant carry the revision the reply named (the history holds them there), a read of
 * each written key right after the reply (pushing the intent it meets, as every read does)
 * sees the write or a newer one, and a watcher of every shard, live from the start, gets
 * every event in revision order and ends with exactly each key's final state. A status read
 * (`GET /v1/txn/{id}`'s reader, reads only) right after each reply says committed with the
 * reply's branch, though the record may still be staging; status reads of random transactions
 * at random moments never say committed or aborted unless the record ends so.
 *
 * A coordinator crashes after a random number of calls, so at every step: during the prepares,
 * once every participant prepared (committed by parallel commits, yet nothing resolved and the
 * record staging) and between the resolves; pushers recover such staging records by fencing
 * their participants, and crash in the middle of that too.
 */
import { SeededPrng } from "../raft/mod.ts";
import {
  type ApplyResult,
  AspenError,
  type KeyValue,
  shardForKey,
  type TxnBranch,
  type TxnHolder,
  type Watcher,
} from "../shard/mod.ts";
import {
  type PlantedTxnBug,
  TXN_DEADLINE_MS,
  TxnCoordinator,
} from "../server/node/txn_coordinator.ts";
import { readTxnStatus } from "../server/node/cross_shard_txns.ts";
import {
  CrashingTransport,
  drawFaults,
  openShards,
  SimClock,
  SimNetwork,
  type SimShard,
} from "./txn_sim_world.ts";

/** What one run does. */
export interface TxnSimOptions {
  readonly seed: number;
  readonly shardCount: number;
  readonly clients: number;
  readonly opsPerClient: number;
  /** Runs the coordinators with a planted protocol bug (the simulation's test of itself). */
  readonly plantedBug?: PlantedTxnBug;
}

/** What one run found. */
export interface TxnSimReport {
  readonly seed: number;
  readonly violations: string[];
  readonly trace: number;
  readonly counts: Record<string, number>;
}

const BALANCE_START = 100;
const ACCOUNTS_PER_SHARD = 2;
const TAGS = 3;
const REQUEST_MS = 800;
const WALL_EPOCH_MS = 1_780_000_000_000;
const RECOVERY_ROUNDS_MAX = 20;

/** Runs one seed in a fresh temporary directory and reports every broken invariant. */
export async function runTxnSim(options: TxnSimOptions): Promise<TxnSimReport> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-txn-sim-" });
  const shards = openShards(dir, options.shardCount);
  try {
    return await new TxnSim(options, shards).run();
  } finally {
    for (const shard of shards) shard.machine.close();
    await Deno.remove(dir, { recursive: true });
  }
}

class TxnSim {
  readonly #options: TxnSimOptions;
  readonly #shards: readonly SimShard[];
  readonly #prng: SeededPrng;
  readonly #clock = new SimClock();
  readonly #network: SimNetwork;
  readonly #accounts: string[];
  readonly #tags: string[];
  readonly violations: string[] = [];
  readonly counts: Record<string, number> = {};
  /** What each coordinator answered, by txnId: the record must agree. */
  readonly #answers = new Map<string, "committed" | "aborted">();
  /**
   * What `GET /v1/txn/{id}` said of a transaction whenever it said committed or aborted, by
   * txnId: the record must end so.
   */
  readonly #statusSaid = new Map<string, Set<string>>();
  /** What each replied etcd-style transfer named, by txnId: what follows must agree. */
  readonly #replies = new Map<string, Reply>();
  /** Every event each shard's watcher delivered, in delivery order. */
  readonly #delivered: { key: string; value: string | null; revision: number }[][] = [];
  #incarnations = 0;

  constructor(options: TxnSimOptions, shards: readonly SimShard[]) {
    this.#options = options;
    this.#shards = shards;
    this.#prng = new SeededPrng(options.seed);
    this.#network = new SimNetwork(this.#clock, this.#prng, shards, drawFaults(this.#prng));
    this.#accounts = pickKeys("acct/", options.shardCount, ACCOUNTS_PER_SHARD);
    this.#tags = Array.from({ length: TAGS }, (_, i) => `tag/${i}`);
  }

  async run(): Promise<TxnSimReport> {
    const watchers = this.#shards.map((shard) => shard.machine.watch({ prefix: "" }));
    const watching = watchers.map((watcher, shard) => this.#follow(shard, watcher));
    for (const key of this.#accounts) this.#putDirect(key, String(BALANCE_START));
    let isDone = false;
    const flow = this.#workload().then(
      () => this.#recover(),
    ).finally(() => isDone = true);
    const isFinished = await this.#clock.drive(() => isDone);
    if (!isFinished) this.violations.push(`the run stalled at ${this.#clock.nowMs} ms`);
    else await flow;
    for (const watcher of watchers) watcher.cancel();
    await Promise.all(watching);
    this.#check();
    this.#checkReplies();
    this.#checkWatch();
    return {
      seed: this.#options.seed,
      violations: this.violations,
      trace: this.#network.trace,
      counts: this.counts,
    };
  }

  async #workload(): Promise<void> {
    const clients = Array.from({ length: this.#options.clients }, (_, client) => client);
    await Promise.all(clients.map((client) => this.#client(client)));
  }

  async #client(client: number): Promise<void> {
    for (let op = 0; op < this.#options.opsPerClient; op++) {
      await this.#clock.sleep(this.#prng.nextInt(20));
      if (this.#prng.nextInt(4) === 0) await this.#readSomeStatus();
      const crash = this.#crashPlan();
      let onCrash = () => {};
      const crashed = new Promise<string>((resolve) => onCrash = () => resolve("crashed"));
      const transport = new CrashingTransport(this.#network, { ...crash, onCrash });
      const coordinator = this.#coordinator(transport, client);
      const kind = await Promise.race([this.#operation(coordinator, transport), crashed]);
      this.#count(kind);
    }
  }

  #crashPlan() {
    const isCrashing = this.#prng.nextInt(100) < 15;
    return {
      callsBeforeCrash: isCrashing ? this.#prng.nextInt(10) : Number.MAX_SAFE_INTEGER,
      isDeliveredAtCrash: this.#prng.nextInt(2) === 0,
    };
  }

  #coordinator(transport: CrashingTransport, client: number): TxnCoordinator {
    this.#incarnations++;
    const skewMs = this.#prng.nextInt(20);
    return new TxnCoordinator({
      nodeId: client * 10_000 + this.#incarnations,
      shardCount: this.#options.shardCount,
      transport,
      nowMs: () => this.#clock.nowMs,
      wallMs: () => WALL_EPOCH_MS + this.#clock.nowMs + skewMs,
      sleep: (ms) => transport.hangIfCrashed(this.#clock.sleep(ms)),
      // Lost calls and crashes may stop the resolves after a reply: pushers finish them.
      onResolveLaterError: () => this.#count("resolve-later-failed"),
      ...(this.#options.plantedBug === undefined ? {} : { plantedBug: this.#options.plantedBug }),
    });
  }

  /** Runs one random operation; returns what it was and how it ended, for the counts. */
  async #operation(coordinator: TxnCoordinator, transport: CrashingTransport): Promise<string> {
    const deadlineMs = this.#clock.nowMs + REQUEST_MS;
    const choice = this.#prng.nextInt(10);
    try {
      if (choice < 3) return await this.#transferTxn(coordinator, transport, deadlineMs);
      if (choice < 6) return await this.#transferOptimistic(coordinator, deadlineMs);
      if (choice < 8) return await this.#readAll(coordinator, deadlineMs);
      if (choice < 9) return await this.#localTransfer(coordinator, transport, deadlineMs);
      return await this.#tagPut(coordinator, transport, deadlineMs);
    } catch (error) {
      if (error instanceof AspenError && ["conflict", "timeout"].includes(error.code)) {
        const txnId = error.details.txnId;
        if (error.code === "conflict" && typeof txnId === "string") {
          this.#answers.set(txnId, "aborted");
        }
        return `failed:${error.code}`;
      }
      this.violations.push(`unexpected error: ${String(error)}`);
      return "failed:unexpected";
    }
  }

  async #transferTxn(
    coordinator: TxnCoordinator,
    transport: CrashingTransport,
    deadlineMs: number,
  ): Promise<string> {
    const [from, to] = this.#twoAccounts(false);
    const amount = 1 + this.#prng.nextInt(9);
    const tag = this.#pick(this.#tags);
    const writes = new Map([
      [from.key, String(Number(from.value) - amount)],
      [to.key, String(Number(to.value) + amount)],
      [tag, `moved ${amount}`],
    ]);
    const result = await coordinator.txn({
      compare: [from, to].map((kv) => ({
        key: kv.key,
        target: "modRevision" as const,
        op: "=" as const,
        value: kv.modRevision,
      })),
      success: [...writes].map(([key, value]) => put(key, value)),
      failure: [{ type: "get", key: from.key }],
    }, deadlineMs);
    if (result.txnId === null) {
      this.violations.push("a transfer ran as a read-only txn");
      return "transfer-txn:read-only";
    }
    this.#answers.set(result.txnId, "committed");
    await this.#readStatus(result.txnId, result.succeeded ? "success" : "failure");
    const reply = { succeeded: result.succeeded, revisions: result.revisions, writes };
    this.#replies.set(result.txnId, reply);
    if (result.succeeded) await this.#readAfterReply(coordinator, transport, reply, deadlineMs);
    return result.succeeded ? "transfer-txn:committed" : "transfer-txn:compare-failed";
  }

  /**
   * Reads every key a replied transfer wrote, pushing the intents it meets: each must show the
   * transfer's write (at the revision the reply named) or a newer one.
   */
  async #readAfterReply(
    coordinator: TxnCoordinator,
    transport: CrashingTransport,
    reply: Reply,
    deadlineMs: number,
  ): Promise<void> {
    for (const [key, value] of reply.writes) {
      const shard = shardForKey(key, this.#options.shardCount);
      const revision = reply.revisions.get(shard);
      let read = await transport.readKeys(shard, [key], null, deadlineMs);
      for (let push = 0; read.intents[0] !== null && push < 3; push++) {
        this.#count("push");
        await coordinator.push(shard, key, read.intents[0]!, deadlineMs);
        read = await transport.readKeys(shard, [key], null, deadlineMs);
      }
      const kv = read.kvs[0] ?? null;
      if (read.intents[0] !== null) continue;
      this.#count("read-after-reply");
      const isSeen = kv !== null && revision !== undefined &&
        (kv.modRevision > revision || (kv.modRevision === revision && kv.value === value));
      if (!isSeen) {
        this.violations.push(
          `a read after the reply of a write of "${key}" at ${revision} saw ` +
            JSON.stringify(kv),
        );
      }
    }
  }

  async #transferOptimistic(coordinator: TxnCoordinator, deadlineMs: number): Promise<string> {
    const [from, to] = this.#twoAccounts(false);
    const amount = 1 + this.#prng.nextInt(9);
    const result = await coordinator.optimistic({
      reads: [from, to].map((kv) => ({
        key: kv.key,
        modRevision: kv.modRevision,
        version: null,
        revision: null,
      })),
      writes: [
        { op: "set", key: from.key, value: String(Number(from.value) - amount) },
        { op: "set", key: to.key, value: String(Number(to.value) + amount) },
      ],
    }, deadlineMs);
    this.#answers.set(result.txnId, "committed");
    await this.#readStatus(result.txnId, "success");
    return "transfer-optimistic:committed";
  }

  /** `GET /v1/txn/{id}` of a transaction sent at some point, maybe still under way. */
  async #readSomeStatus(): Promise<void> {
    const sent = [...this.#network.sent.keys()];
    if (sent.length > 0) await this.#readStatus(this.#pick(sent), null);
  }

  /**
   * `GET /v1/txn/{id}` of `txnId` through the network (reads only, never a fence), as a client
   * would ask it: right after a reply (`replied`: the branch it named) it must say committed
   * with that branch, whatever the record says yet; any committed or aborted it says is kept,
   * for #check to hold the record's end to it.
   */
  async #readStatus(txnId: string, replied: TxnBranch | null): Promise<void> {
    const deadlineMs = this.#clock.nowMs + REQUEST_MS;
    const shardCount = this.#options.shardCount;
    let status;
    try {
      status = await readTxnStatus({ txnId, shardCount, transport: this.#network, deadlineMs });
    } catch (error) {
      const isExpected = error instanceof AspenError &&
        (error.code === "timeout" || (error.code === "txn_not_found" && replied === null));
      if (!isExpected) this.violations.push(`GET /v1/txn/${txnId} failed: ${String(error)}`);
      this.#count(`status:failed`);
      return;
    }
    this.#count(`status:${status.status}/${status.recordStatus}`);
    if (status.status !== "pending") {
      this.#statusSaid.set(txnId, (this.#statusSaid.get(txnId) ?? new Set()).add(status.status));
    }
    const isAgreed = replied === null ||
      (status.status === "committed" && status.branch === replied);
    if (!isAgreed) {
      this.violations.push(
        `txn ${txnId} was replied ${replied}, then GET /v1/txn said ${status.status} ` +
          `${status.branch} (record ${status.recordStatus})`,
      );
    }
  }

  async #readAll(coordinator: TxnCoordinator, deadlineMs: number): Promise<string> {
    const through = coordinator.readsThroughIntents;
    const result = await coordinator.txn({
      compare: [],
      success: this.#accounts.map((key) => ({ type: "get" as const, key })),
      failure: [],
    }, deadlineMs);
    if (result.txnId !== null) this.violations.push(`read-only txn ${result.txnId} took locks`);
    if (coordinator.readsThroughIntents > through) this.#count("read:through-intents");
    let total = 0;
    for (const { result: item } of result.results) {
      if (item.type !== "get" || item.kv === null) {
        this.violations.push(`a read-only txn missed an account`);
        return "read:torn";
      }
      total += Number(item.kv.value);
    }
    const expected = BALANCE_START * this.#accounts.length;
    if (total !== expected) {
      const at = JSON.stringify([...result.revisions]);
      this.violations.push(`a read-only txn saw total ${total}, not ${expected} (at ${at})`);
    }
    return "read:ok";
  }

  /** A single-shard conditional transfer, pushing the intents it meets. */
  async #localTransfer(
    coordinator: TxnCoordinator,
    transport: CrashingTransport,
    deadlineMs: number,
  ): Promise<string> {
    const [from, to] = this.#twoAccounts(true);
    const amount = 1 + this.#prng.nextInt(9);
    const shard = shardForKey(from.key, this.#options.shardCount);
    const result = await this.#runPushing(coordinator, transport, {
      shard,
      command: {
        type: "txn",
        compare: [from, to].map((kv) => ({
          key: kv.key,
          target: "modRevision" as const,
          op: "=" as const,
          value: kv.modRevision,
        })),
        success: [
          put(from.key, String(Number(from.value) - amount)),
          put(to.key, String(Number(to.value) + amount)),
        ],
        failure: [],
      },
    }, deadlineMs);
    return `local-transfer:${result.type}`;
  }

  async #tagPut(
    coordinator: TxnCoordinator,
    transport: CrashingTransport,
    deadlineMs: number,
  ): Promise<string> {
    const tag = this.#pick(this.#tags);
    const shard = shardForKey(tag, this.#options.shardCount);
    const command = { type: "put" as const, key: tag, value: "plain", lease: 0, prevKv: false };
    const result = await this.#runPushing(coordinator, transport, { shard, command }, deadlineMs);
    return `tag-put:${result.type}`;
  }

  /** Runs a single-shard write; on `locked`, pushes the holder and runs it again. */
  async #runPushing(
    coordinator: TxnCoordinator,
    transport: CrashingTransport,
    request: { shard: number; command: Parameters<CrashingTransport["run"]>[1] },
    deadlineMs: number,
  ): Promise<ApplyResult> {
    for (let attempt = 0;; attempt++) {
      const result = await transport.run(request.shard, request.command, deadlineMs);
      if (result.type !== "locked" || attempt >= 3) return result;
      this.#count("push");
      await coordinator.push(request.shard, result.key, result.holder, deadlineMs);
    }
  }

  /** Pushes every intent left, with faults off and every deadline passed. */
  async #recover(): Promise<void> {
    this.#network.faults = { ...this.#network.faults, lossBeforePerMille: 0, lossAfterPerMille: 0 };
    await this.#clock.sleep(TXN_DEADLINE_MS + 1_000);
    const transport = new CrashingTransport(this.#network, {
      callsBeforeCrash: Number.MAX_SAFE_INTEGER,
      isDeliveredAtCrash: false,
      onCrash: () => {},
    });
    const pusher = this.#coordinator(transport, this.#options.clients);
    for (let round = 0; round < RECOVERY_ROUNDS_MAX; round++) {
      const left = this.#leftIntents();
      if (left.length === 0) return;
      for (const { shard, key, holder } of left) {
        await pusher.push(shard, key, holder, this.#clock.nowMs + 10 * TXN_DEADLINE_MS);
      }
    }
  }

  #leftIntents(): { shard: number; key: string; holder: TxnHolder }[] {
    const left = [];
    for (const key of [...this.#accounts, ...this.#tags]) {
      const shard = shardForKey(key, this.#options.shardCount);
      const holder = this.#shards[shard]!.machine.intentOf(key);
      if (holder !== null) left.push({ shard, key, holder });
    }
    return left;
  }

  #check(): void {
    let total = 0;
    for (const key of this.#accounts) total += Number(this.#read(key).value);
    const expected = BALANCE_START * this.#accounts.length;
    if (total !== expected) this.violations.push(`total is ${total}, not ${expected}`);
    for (const shard of this.#shards) {
      const count = shard.machine.intentCount();
      if (count !== 0) this.violations.push(`shard ${shard.id} still holds ${count} intents`);
    }
    for (const [txnId, sent] of this.#network.sent) this.#checkTxn(txnId, sent);
    for (const [txnId, said] of this.#statusSaid) {
      const home = this.#network.sent.get(txnId)?.home ?? -1;
      const status = this.#shards[home]?.machine.txnRecord(txnId)?.status ?? "absent";
      if (said.size !== 1 || !said.has(status)) {
        this.violations.push(`GET /v1/txn/${txnId} said ${[...said]} but its record is ${status}`);
      }
    }
    for (const [txnId, answer] of this.#answers) {
      const sent = this.#network.sent.get(txnId);
      const record = sent === undefined ? null : this.#shards[sent.home]!.machine.txnRecord(txnId);
      const status = record?.status ?? "absent";
      if ((answer === "committed") !== (status === "committed")) {
        this.violations.push(`txn ${txnId} was answered ${answer} but its record is ${status}`);
      }
    }
  }

  /** Delivers shard `shard`'s watch events into #delivered until the watcher ends. */
  async #follow(shard: number, watcher: Watcher): Promise<void> {
    const delivered: { key: string; value: string | null; revision: number }[] = [];
    this.#delivered[shard] = delivered;
    for await (const item of watcher) {
      if (item.type === "error") {
        this.violations.push(`the watcher of shard ${shard} ended: ${item.error.message}`);
        return;
      }
      const value = item.type === "put" ? item.kv.value : null;
      delivered.push({ key: item.kv.key, value, revision: item.revision });
    }
  }

  /**
   * Every replied transfer: committed with the branch it named, and (when it succeeded) its
   * writes held by each participant's history at the revision the reply named for it.
   */
  #checkReplies(): void {
    for (const [txnId, reply] of this.#replies) {
      const home = this.#network.sent.get(txnId)?.home ?? -1;
      const record = this.#shards[home]?.machine.txnRecord(txnId) ?? null;
      const branch = reply.succeeded ? "success" : "failure";
      if (record?.status !== "committed" || record.branch !== branch) {
        const found = `${record?.status} ${record?.branch}`;
        this.violations.push(`txn ${txnId} was answered ${branch} but its record is ${found}`);
      }
      if (!reply.succeeded) continue;
      for (const [key, value] of reply.writes) {
        const shard = shardForKey(key, this.#options.shardCount);
        const revision = reply.revisions.get(shard) ?? -1;
        const found = this.#delivered[shard]?.find((event) =>
          event.revision === revision && event.key === key
        );
        if (found?.value !== value) {
          this.violations.push(
            `txn ${txnId} wrote "${key}" = "${value}" at revision ${revision} of shard ` +
              `${shard}, but its watcher got ${JSON.stringify(found)} there`,
          );
        }
      }
    }
  }

  /** Each shard's watcher got its events in revision order, ending at each key's state. */
  #checkWatch(): void {
    for (const shard of this.#shards) {
      const delivered = this.#delivered[shard.id] ?? [];
      const last = new Map<string, { value: string | null; revision: number }>();
      for (const [position, event] of delivered.entries()) {
        const previous = delivered[position - 1];
        if (previous !== undefined && event.revision < previous.revision) {
          this.violations.push(
            `the watcher of shard ${shard.id} got revision ${event.revision} after ` +
              `${previous.revision}`,
          );
          break;
        }
        last.set(event.key, event);
      }
      this.#count("watch-events", delivered.length);
      for (const key of [...this.#accounts, ...this.#tags]) {
        if (shardForKey(key, this.#options.shardCount) !== shard.id) continue;
        const kv = shard.machine.get(key);
        const seen = last.get(key);
        const isAgreed = kv === null
          ? seen === undefined || seen.value === null
          : seen?.value === kv.value && seen.revision === kv.modRevision;
        if (!isAgreed) {
          this.violations.push(
            `the watcher of shard ${shard.id} ended "${key}" at ${JSON.stringify(seen)}, but ` +
              `it holds ${JSON.stringify(kv)}`,
          );
        }
      }
    }
  }

  #checkTxn(txnId: string, sent: { home: number; participants: readonly number[] }): void {
    const record = this.#shards[sent.home]!.machine.txnRecord(txnId);
    const status = record?.status ?? "absent";
    this.#count(`record:${status}`);
    if (status === "pending") this.violations.push(`txn ${txnId} is still pending`);
    // Committed while its coordinator never answered: a crash after the last prepare, and a
    // pusher recovered the staging record (or the crash came between the resolves).
    if (status === "committed" && !this.#answers.has(txnId)) this.#count("committed-unanswered");
    if (this.#network.recoveredCommits.has(txnId)) this.#count("recovered-commit");
    const prepared = this.#network.prepared.get(txnId)?.size ?? 0;
    if (prepared === sent.participants.length && status !== "committed") {
      this.violations.push(`txn ${txnId} prepared on every participant but is ${status}`);
    }
    for (const shard of sent.participants) {
      const row = this.#shards[shard]!.machine.txnParticipant(txnId);
      const state = row?.state ?? "absent";
      if (state === "prepared") this.violations.push(`txn ${txnId} is prepared on ${shard}`);
      if (status === "committed" && state !== "committed") {
        this.violations.push(`committed txn ${txnId} is ${state} on shard ${shard}`);
      }
      if (status !== "committed" && state === "committed") {
        this.violations.push(`${status} txn ${txnId} was applied on shard ${shard}`);
      }
    }
  }

  /** Two accounts on different shards (or, with `sameShard`, on one). */
  #twoAccounts(sameShard: boolean): [KeyValue, KeyValue] {
    const first = this.#pick(this.#accounts);
    const shardOf = (key: string) => shardForKey(key, this.#options.shardCount);
    const others = this.#accounts.filter((key) =>
      key !== first && (shardOf(key) === shardOf(first)) === sameShard
    );
    return [this.#read(first), this.#read(this.#pick(others))];
  }

  #read(key: string): KeyValue {
    const kv = this.#shards[shardForKey(key, this.#options.shardCount)]!.machine.get(key);
    if (kv === null) throw new Error(`txn sim: account ${key} is missing`);
    return kv;
  }

  #putDirect(key: string, value: string): void {
    const shard = this.#shards[shardForKey(key, this.#options.shardCount)]!;
    shard.apply({ type: "put", key, value, lease: 0, prevKv: false });
  }

  #pick<T>(items: readonly T[]): T {
    const item = items[this.#prng.nextInt(items.length)];
    if (item === undefined) throw new Error("txn sim: picked from an empty list");
    return item;
  }

  #count(name: string, by = 1): void {
    this.counts[name] = (this.counts[name] ?? 0) + by;
  }
}

/** What a coordinator's reply to an etcd-style transfer named. */
interface Reply {
  readonly succeeded: boolean;
  readonly revisions: ReadonlyMap<number, number>;
  /** The keys its success branch writes, and their values. */
  readonly writes: ReadonlyMap<string, string>;
}

function put(key: string, value: string) {
  return { type: "put" as const, key, value, lease: 0, prevKv: false };
}

/** `perShard` keys `<prefix><n>` on each of `shardCount` shards. */
function pickKeys(prefix: string, shardCount: number, perShard: number): string[] {
  const keys: string[] = [];
  const counts = new Array<number>(shardCount).fill(0);
  for (let n = 0; keys.length < shardCount * perShard; n++) {
    const key = `${prefix}${n}`;
    const shard = shardForKey(key, shardCount);
    if (counts[shard]! < perShard) {
      counts[shard]!++;
      keys.push(key);
    }
  }
  return keys;
}
