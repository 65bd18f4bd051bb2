// Types of Herald's browser client (herald.js). See docs/client-js.md.

/** One event of a followed topic, as Herald relayed it. */
export interface HeraldEvent {
  /** The topic it was published to. */
  topic: string;
  /** Its event name: `"message"` for an event published without one. */
  name: string;
  /** Its data, as published (line breaks as LF). */
  data: string;
  /** Its id, `<epoch>-<seq>`: no event is handed over twice, and a reopen resumes after it. */
  id: string;
}

/** The data of Herald's `reset` event. */
export interface ResetDetail {
  reason: ResetReason;
  /** Herald's explanation, for people. */
  message: string;
}

/** Why a resume could not be exact (docs/api.md, "Resume"). */
export type ResetReason =
  | "malformed-id"
  | "other-incarnation"
  | "unknown-id"
  | "expired"
  | "replay-too-large"
  | (string & {});

/** `connecting` until a stream opens and while it reconnects; `closed` after `close()`, or once a
 * fixed `token` has expired. */
export type Status = "connecting" | "open" | "closed";

export interface FollowOptions {
  /** Herald's base URL, e.g. `"https://herald.example"`; `""` (the default) for this page's origin. */
  url?: string;
  /** The topics to follow (at least one). */
  topics: string[];
  /** A subscriber token for private topics, used as is (the stream closes when it expires). */
  token?: string;
  /** Returns a fresh subscriber token: called to open, shortly before each token expires, when
   * Herald says it expired, and again (backing off) when an open is refused. */
  getToken?: () => string | Promise<string>;
  /** Each event, once, in order. */
  onEvent: (event: HeraldEvent) => void;
  /** Herald could not replay exactly what was missed: refetch your state. The stream goes on live. */
  onReset?: (reason: ResetReason, detail: ResetDetail) => void;
  onStatus?: (status: Status) => void;
  /** Resume after this id (one a previous `onEvent` got), e.g. kept across a page reload. */
  lastEventId?: string;
  /** Names of named events to hand over besides unnamed ones (`"message"`): an `EventSource`
   * delivers a named event only to listeners of its name. */
  events?: string[];
  /** The `EventSource` constructor to use; the browser's by default (the `eventsource` npm
   * package in Node). */
  EventSource?: new (url: string) => EventSource;
}

export interface Following {
  /** Stops following: closes the stream and clears every timer. */
  close(): void;
}

/** Follows `topics` on a Herald server until `close()` is called. */
export function follow(options: FollowOptions): Following;
