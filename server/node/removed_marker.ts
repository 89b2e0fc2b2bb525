/**
 * The mark a removed node leaves in its data dir (`removed.json`): the rebalance driver tells a
 * draining node that it was removed once it holds no replica, the node writes the mark and
 * stops, and a later start with that data dir is refused before it opens anything (its peers
 * refuse its node id and certificate anyway: the mark makes the refusal clear and local).
 */
import { AspenError } from "../../shard/mod.ts";
import { writeFileAtomic } from "../../transport/mod.ts";

/** The file's name in the data dir. */
export const REMOVED_MARKER_FILE = "removed.json";

/**
 * Refuses to start a node whose data dir carries the mark.
 *
 * @throws {AspenError} `node_removed` naming the node and what to do instead.
 */
export async function checkNotRemoved(dataDir: string, nodeId: number): Promise<void> {
  const path = `${dataDir}/${REMOVED_MARKER_FILE}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  const removedAt = /"removedAtMs":\s*([0-9]+)/.exec(text)?.[1];
  const when = removedAt === undefined ? "" : ` at ${new Date(Number(removedAt)).toISOString()}`;
  throw new AspenError(
    "node_removed",
    `Cannot start node ${nodeId}: it was removed from the cluster${when} ("${path}"); its ` +
      "node id and certificate are refused for good: start a new node with a new id and an " +
      "empty data dir (--join) instead",
    { node: nodeId },
  );
}

/** Writes the mark (atomically). */
export async function writeRemovedMarker(
  dataDir: string,
  mark: { readonly nodeId: number; readonly removedAtMs: number },
): Promise<void> {
  const path = `${dataDir}/${REMOVED_MARKER_FILE}`;
  await writeFileAtomic(path, JSON.stringify(mark) + "\n", 0o644);
}
