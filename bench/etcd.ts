/**
 * A local etcd cluster for `deno task bench:cluster`: the yardstick beside which Aspen's rows are
 * measured (same machine, same client, same run). It starts `members` etcd processes on
 * loopback ports with their own data directories under `dir`, waits until a write succeeds, and
 * stops them with SIGTERM (SIGKILL after a grace period).
 *
 * etcd is not a dependency of Aspen: the script looks for the binary (`etcd` on PATH, or a
 * path given) and says so when there is none. The defaults are etcd's own (fsync on every WAL
 * write, snapshots every 100,000 entries), as a user runs it.
 */

/** How long a cluster may take to accept its first write. */
export const ETCD_START_TIMEOUT_MS = 30_000;
/** How long a member may take to exit after SIGTERM before it is killed. */
export const ETCD_STOP_GRACE_MS = 5_000;

/** A started etcd cluster. */
export interface EtcdCluster {
  /** Each member's client URL (`http://127.0.0.1:PORT`), by member order. */
  readonly urls: readonly string[];
  /** Each member's process id, by member order. */
  readonly pids: readonly number[];
  /** Stops every member and waits for it to exit. */
  stop(): Promise<void>;
}

/** The etcd binary to use: `path` when given, else `etcd` on PATH; null when there is none. */
export async function findEtcd(path: string | null): Promise<string | null> {
  const candidates = path !== null
    ? [path]
    : (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "").map((dir) =>
      `${dir}/etcd`
    );
  for (const candidate of candidates) {
    const info = await Deno.stat(candidate).catch(() => null);
    if (info?.isFile === true && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
  }
  return null;
}

/** The first line of `etcd --version` ("etcd Version: 3.4.23" gives "3.4.23"). */
export async function etcdVersion(binary: string): Promise<string> {
  const output = await new Deno.Command(binary, { args: ["--version"] }).output();
  const text = new TextDecoder().decode(output.stdout);
  return /Version:\s*(\S+)/.exec(text)?.[1] ?? "unknown";
}

/** Starts `members` etcd members in `dir` and waits until the cluster accepts a write. */
export async function launchEtcd(options: {
  readonly binary: string;
  readonly dir: string;
  readonly members: number;
  readonly onLine?: (member: number, line: string) => void;
}): Promise<EtcdCluster> {
  const ports = await freePorts(2 * options.members);
  const names = Array.from({ length: options.members }, (_, i) => `e${i + 1}`);
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const urls = names.map((_, i) => `http://127.0.0.1:${ports[2 * i]}`);
  const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(",");
  const children = names.map((name, i) =>
    new Deno.Command(options.binary, {
      args: [
        `--name=${name}`,
        `--data-dir=${options.dir}/${name}`,
        `--listen-client-urls=${urls[i]}`,
        `--advertise-client-urls=${urls[i]}`,
        `--listen-peer-urls=${peerUrl(i)}`,
        `--initial-advertise-peer-urls=${peerUrl(i)}`,
        `--initial-cluster=${initialCluster}`,
        "--initial-cluster-state=new",
        "--initial-cluster-token=aspen-bench",
        "--logger=zap",
        "--log-level=error",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn()
  );
  children.forEach((child, i) => void forwardLines(child.stderr, i + 1, options.onLine));
  const cluster: EtcdCluster = {
    urls,
    pids: children.map((child) => child.pid),
    stop: () => stopAll(children),
  };
  try {
    await waitForWrite(urls);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** Loopback ports free right now (bound and released; etcd binds them a moment later). */
async function freePorts(count: number): Promise<number[]> {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((listener) => (listener.addr as Deno.NetAddr).port);
  for (const listener of listeners) listener.close();
  await Promise.resolve();
  return ports;
}

/** Puts a key through every member until each one answers 200 (a leader exists). */
async function waitForWrite(urls: readonly string[]): Promise<void> {
  const deadline = Date.now() + ETCD_START_TIMEOUT_MS;
  for (const url of urls) {
    for (;;) {
      const status = await fetch(`${url}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: btoa("bench-ready"), value: btoa("1") }),
      }).then(async (response) => {
        await response.body?.cancel();
        return response.status;
      }).catch(() => 0);
      if (status === 200) break;
      if (Date.now() > deadline) {
        throw new Error(`etcd at ${url} accepted no write in ${ETCD_START_TIMEOUT_MS} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function stopAll(children: readonly Deno.ChildProcess[]): Promise<void> {
  await Promise.all(children.map(async (child) => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited meanwhile.
      }
    }, ETCD_STOP_GRACE_MS);
    await child.status;
    clearTimeout(timer);
  }));
}

async function forwardLines(
  stream: ReadableStream<Uint8Array>,
  member: number,
  onLine: ((member: number, line: string) => void) | undefined,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line !== "") onLine?.(member, line);
  }
}
