/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * The events feed: what the console saw change between status snapshots, newest first, with the
 * time it was seen and a severity written out in words.
 */
import { useStore } from "./context.ts";
import type { EventSeverity } from "./events.ts";
import { formatClock } from "./format.ts";

const SEVERITY_LABELS: Readonly<Record<EventSeverity, string>> = {
  info: "Info",
  warning: "Warning",
  critical: "Critical",
};

/** The feed, in a fixed-height scrolling list. */
export function EventsFeed() {
  const store = useStore();
  const events = store.events.value;
  if (events.length === 0) {
    return (
      <p class="empty-note" role="status">
        No events yet. Leader changes, elections, and nodes going down or up appear here.
      </p>
    );
  }
  return (
    <ol class="events" aria-label="Cluster events, newest first" tabIndex={0}>
      {events.map((event) => (
        <li key={event.id} class={`event sev-${event.severity}`} data-kind={event.kind}>
          <time class="event-time num" dateTime={new Date(event.atMs).toISOString()}>
            {formatClock(event.atMs)}
          </time>
          <span class="event-sev">{SEVERITY_LABELS[event.severity]}</span>
          <span class="event-text">{event.message}</span>
        </li>
      ))}
    </ol>
  );
}
