/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The sign-in page: one token field. The token is checked against the node before it is kept,
 * and it is kept in the tab's session storage only, so closing the tab signs out.
 */
import { useState } from "preact/hooks";
import { useStore } from "./context.ts";
import { Logo } from "./logo.tsx";

/** The sign-in form, with the reason the last attempt or session ended. */
export function SignIn() {
  const store = useStore();
  const [token, setToken] = useState("");
  const session = store.session.value;
  const isChecking = session.kind === "checking";
  const message = session.kind === "signed-out" ? session.message : null;
  function onSubmit(event: Event) {
    event.preventDefault();
    store.signIn(token.trim()).catch((error) => {
      throw new Error("Cannot sign in", { cause: error });
    });
  }
  return (
    <main class="signin" id="main">
      <form class="signin-card" onSubmit={onSubmit} aria-labelledby="signin-title">
        <div class="signin-brand">
          <Logo />
          <span>Aspen console</span>
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p class="muted">
          Use an Aspen access token. It stays in this browser tab only and is forgotten when the tab
          closes.
        </p>
        <label for="token" class="field-label">Access token</label>
        <input
          id="token"
          name="token"
          type="password"
          class="input"
          autoComplete="off"
          spellcheck={false}
          value={token}
          onInput={(event) => setToken((event.target as HTMLInputElement).value)}
          aria-describedby="token-hint"
          autoFocus
        />
        <p id="token-hint" class="field-hint">
          Leave it empty if the cluster runs with authentication turned off.
        </p>
        {message === null ? null : <p class="form-error" role="alert">{message}</p>}
        <button type="submit" class="button button-primary button-wide" disabled={isChecking}>
          {isChecking ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
