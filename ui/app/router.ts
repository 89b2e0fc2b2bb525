/**
 * The console's pages and their addresses. Routing lives in the URL's hash (`#/keys`), so that
 * the server serves one page for every view and reloads and links keep the view.
 */

/** A page of the console. */
export type Route = "overview" | "shards" | "transactions" | "metrics" | "keys";

/** The pages in navigation order, with their labels. */
export const ROUTES: readonly { readonly route: Route; readonly label: string }[] = [
  { route: "overview", label: "Overview" },
  { route: "shards", label: "Shards" },
  { route: "transactions", label: "Transactions" },
  { route: "metrics", label: "Metrics" },
  { route: "keys", label: "Keys" },
];

/** The page that `hash` (as in `location.hash`) names; the overview for anything else. */
export function routeFromHash(hash: string): Route {
  const name = hash.replace(/^#\/?/, "");
  return ROUTES.find((entry) => entry.route === name)?.route ?? "overview";
}

/** The hash that names `route`. */
export function hashOf(route: Route): string {
  return `#/${route}`;
}
