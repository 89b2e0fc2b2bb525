/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The console's entry point in the browser: builds the store on the real fetch, timers, clock
 * and session storage, follows the URL hash for the page, and renders the app.
 */
import { signal } from "@preact/signals";
import { render } from "preact";
import { App } from "./app.tsx";
import { StoreContext } from "./context.ts";
import { REQUEST_TIMEOUT_MS } from "./limits.ts";
import { routeFromHash } from "./router.ts";
import { ConsoleStore } from "./store.ts";

const store = new ConsoleStore({
  transport: {
    fetch: (input, init) => fetch(input, init),
    baseUrl: "",
    timeoutMs: REQUEST_TIMEOUT_MS,
  },
  storage: globalThis.sessionStorage ?? null,
  nowMs: () => Date.now(),
  setTimer: (callback, delayMs) => {
    const id = setTimeout(callback, delayMs);
    return () => clearTimeout(id);
  },
});

const route = signal(routeFromHash(location.hash));
addEventListener("hashchange", () => {
  route.value = routeFromHash(location.hash);
});

store.resume();
const root = document.getElementById("app");
if (root === null) throw new Error("Cannot start the console: the page has no #app element");
render(
  <StoreContext.Provider value={store}>
    <App route={route} />
  </StoreContext.Provider>,
  root,
);
