/**
 * How views reach the store: one Preact context, set once by the app's root.
 */
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { assert } from "./assert.ts";
import type { ConsoleStore } from "./store.ts";

/** The store of the running console; null only outside the app's root. */
export const StoreContext = createContext<ConsoleStore | null>(null);

/** The store of the running console. */
export function useStore(): ConsoleStore {
  const store = useContext(StoreContext);
  assert(store !== null, "views render inside the app's StoreContext");
  return store;
}
