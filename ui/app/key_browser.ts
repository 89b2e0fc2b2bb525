/**
 * The key browser's state and requests, as a hook: a prefix scan with cursor paging (each page
 * remembers the cursor it was read with, so "Previous" re-reads it), the selected key's details,
 * and put and delete. Views call the actions; every failure lands in the state as a message.
 * Each scan and each key read is numbered, and only the answer to the latest one is shown, so a
 * slow answer to an older request never overwrites a newer one.
 */
import { useRef, useState } from "preact/hooks";
import type {
  DeleteKvResponse,
  GetKvResponse,
  PutKvResponse,
  RangeResponse,
} from "../../api/mod.ts";
import { ApiError, kvPath } from "./api.ts";
import {
  parseDeleteKvResponse,
  parseGetKvResponse,
  parsePutKvResponse,
  parseRangeResponse,
} from "./kv_parse.ts";
import { useStore } from "./context.ts";
import { formatInteger } from "./format.ts";
import { SCAN_PAGE_KEYS, SCAN_PAGES_MAX } from "./limits.ts";

/** A request's state in a view. */
export type Loadable<T> =
  | { readonly kind: "idle" }
  | { readonly kind: "loading" }
  | { readonly kind: "ok"; readonly value: T }
  | { readonly kind: "error"; readonly message: string };

/** The current page of a scan. */
export interface ScanPage {
  readonly prefix: string;
  /** The cursor of each page read so far; the last one is the current page's. */
  readonly cursors: readonly (string | null)[];
  /** The page on screen; while a new page loads, the previous one stays (no layout jump). */
  readonly result: Loadable<RangeResponse>;
  /**
   * How many keys the whole scan holds (a `countOnly` read: a page's own `count` is only its
   * length); null when that read failed.
   */
  readonly total: number | null;
  readonly isLoading: boolean;
}

/**
 * The line under a page of keys: "Keys 26–50 of 22,542 with prefix "a/"", or, without a total,
 * an honest "first" that claims no count.
 */
export function scanSummary(options: {
  readonly first: number;
  readonly last: number;
  readonly total: number | null;
  readonly where: string;
}): string {
  const range = `${options.first}–${options.last}`;
  if (options.total === null) return `Keys ${range} ${options.where} (total unknown)`;
  return `Keys ${range} of ${formatInteger(options.total)} ${options.where}`;
}

/** A selected key: its details, or "missing" if it is gone. */
export type KeyDetail = Loadable<GetKvResponse | "missing">;

/** The key browser's state and actions. */
export interface KeyBrowser {
  readonly scan: ScanPage;
  readonly selected: string | null;
  readonly detail: KeyDetail;
  runScan(prefix: string, cursors: readonly (string | null)[]): Promise<void>;
  nextPage(): Promise<void>;
  previousPage(): Promise<void>;
  select(key: string | null): Promise<void>;
  put(key: string, value: string): Promise<PutKvResponse>;
  remove(key: string): Promise<DeleteKvResponse>;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The key browser's state, kept by the page that renders it. */
export function useKeyBrowser(): KeyBrowser {
  const store = useStore();
  const scan = useScan(store);
  const key = useKeyDetail(store);
  return {
    ...scan,
    ...key,
    async put(key: string, value: string) {
      const body = await store.request({ method: "PUT", path: kvPath(key), body: { value } });
      return parsePutKvResponse(body);
    },
    async remove(key: string) {
      const body = await store.request({ method: "DELETE", path: kvPath(key) });
      return parseDeleteKvResponse(body);
    },
  };
}

type Store = ReturnType<typeof useStore>;

function useScan(store: Store): Pick<KeyBrowser, "scan" | "runScan" | "nextPage" | "previousPage"> {
  const [scan, setScan] = useState<ScanPage>({
    prefix: "",
    cursors: [],
    result: { kind: "idle" },
    total: null,
    isLoading: false,
  });
  const scanNumber = useRef(0);

  async function runScan(prefix: string, cursors: readonly (string | null)[]): Promise<void> {
    const number = ++scanNumber.current;
    const pages = cursors.length === 0 ? [null] : cursors.slice(-SCAN_PAGES_MAX);
    setScan((old) => ({ ...old, isLoading: true }));
    const query = new URLSearchParams({ prefix, limit: String(SCAN_PAGE_KEYS) });
    const after = pages[pages.length - 1];
    if (after !== null && after !== undefined) query.set("after", after);
    const countQuery = new URLSearchParams({ prefix, countOnly: "true" });
    const counting = store.request({ method: "GET", path: `/v1/kv?${countQuery}` }).then(
      (body) => parseRangeResponse(body).count,
      () => null, // The page still shows; the summary then says the total is unknown.
    );
    let result: Loadable<RangeResponse>;
    try {
      const body = await store.request({ method: "GET", path: `/v1/kv?${query}` });
      result = { kind: "ok", value: parseRangeResponse(body) };
    } catch (error) {
      result = { kind: "error", message: messageOf(error) };
    }
    const total = await counting;
    if (number === scanNumber.current) {
      setScan({ prefix, cursors: pages, result, total, isLoading: false });
    }
  }

  return {
    scan,
    runScan,
    async nextPage() {
      if (scan.result.kind !== "ok" || scan.result.value.next === undefined) return;
      await runScan(scan.prefix, [...scan.cursors, scan.result.value.next]);
    },
    async previousPage() {
      if (scan.cursors.length <= 1) return;
      await runScan(scan.prefix, scan.cursors.slice(0, -1));
    },
  };
}

function useKeyDetail(store: Store): Pick<KeyBrowser, "selected" | "detail" | "select"> {
  const [selected, setSelected] = useState<string | null>(null);
  const [detail, setDetail] = useState<KeyDetail>({ kind: "idle" });
  const selectNumber = useRef(0);

  async function select(key: string | null): Promise<void> {
    const number = ++selectNumber.current;
    setSelected(key);
    if (key === null) return setDetail({ kind: "idle" });
    setDetail({ kind: "loading" });
    let next: KeyDetail;
    try {
      const body = await store.request({ method: "GET", path: kvPath(key) });
      next = { kind: "ok", value: parseGetKvResponse(body) };
    } catch (error) {
      const isMissing = error instanceof ApiError && error.code === "key_not_found";
      next = isMissing
        ? { kind: "ok", value: "missing" }
        : { kind: "error", message: messageOf(error) };
    }
    if (number === selectNumber.current) setDetail(next);
  }

  return { selected, detail, select };
}
