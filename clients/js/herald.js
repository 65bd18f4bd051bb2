// Herald's browser client: follow topics of a Herald server with the browser's EventSource,
// resuming without loss or repeats across reconnects, resets and token refreshes.
// One ES module with no dependencies; Herald serves it at /client/herald.js (types at
// /client/herald.d.ts). See docs/client-js.md.

/** Events Herald sends about the stream itself, never handed to `onEvent`. */
const HERALD_EVENTS = new Set(["reset", "shutdown", "token-expired", "error", "open", "message"]);

/** `EventSource.CLOSED`: the connection failed and the EventSource will not retry by itself. */
const CLOSED = 2;

/** The longest wait between two attempts to open after failures, in ms. */
const MAX_BACKOFF = 30_000;

/** A token is refreshed this long before it expires, or a quarter of its lifetime if shorter. */
const REFRESH_LEAD = 30_000;

/** How far a token's `iat` may be from this clock before the clock is taken to be wrong, in ms. */
const MAX_SKEW = 10_000;

/** The longest delay `setTimeout` keeps (about 24.8 days); a longer one fires at once. */
const MAX_TIMER = 2 ** 31 - 1;

/**
 * Follows `topics` on the Herald at `url` until `close()` is called.
 * @param {import("./herald").FollowOptions} options
 * @returns {import("./herald").Following}
 */
export function follow(options) {
  const {
    url = "",
    topics,
    token,
    getToken,
    onEvent,
    onReset,
    onStatus,
    lastEventId,
    events = [],
    EventSource: EventSourceClass = globalThis.EventSource,
  } = options ?? {};
  if (!Array.isArray(topics) || topics.length === 0 || !topics.every((topic) => typeof topic === "string")) {
    throw new TypeError("follow: `topics` must be a non-empty array of topic names");
  }
  if (typeof onEvent !== "function") throw new TypeError("follow: `onEvent` must be a function");
  if (getToken !== undefined && typeof getToken !== "function") {
    throw new TypeError("follow: `getToken` must be a function that returns a token (or a promise of one)");
  }
  if (typeof EventSourceClass !== "function") {
    throw new TypeError("follow: no EventSource here: pass one as the `EventSource` option");
  }
  // Named events to hand over besides unnamed ones: an EventSource dispatches a named event only
  // to the listeners of that name.
  const names = [...new Set(events)].filter((name) => !HERALD_EVENTS.has(name));
  const streamPath = `${String(url).replace(/\/+$/, "")}/events`;

  /** The id of the last event handed over (or of the last reset): where a reopen resumes. */
  let lastId = lastEventId ?? "";
  let currentToken = token;
  /** The EventSource in use; events of any other (closed) one are ignored. */
  let source = null;
  /** Consecutive attempts to open that failed, for the backoff; 0 once a stream opens. */
  let failures = 0;
  /** Whether a `getToken()` is in flight: the open it was called for happens when it settles. */
  let fetching = false;
  let openTimer;
  let refreshTimer;
  let status;
  let closed = false;

  const setStatus = (next) => {
    if (next !== status) {
      status = next;
      onStatus?.(next);
    }
  };

  const drop = () => {
    clearTimeout(refreshTimer);
    refreshTimer = undefined;
    if (source) {
      source.close();
      source = null;
    }
  };

  const stop = () => {
    closed = true;
    drop();
    clearTimeout(openTimer);
    openTimer = undefined;
    setStatus("closed");
  };

  /** Opens after `delay` ms, with a fresh token first when `fresh` and `getToken` is given. */
  const openLater = (delay, fresh) => {
    clearTimeout(openTimer);
    openTimer = setTimeout(() => {
      openTimer = undefined;
      open(fresh);
    }, delay);
  };

  const retryLater = () => {
    failures += 1;
    setStatus("connecting");
    openLater(backoff(failures), true);
  };

  const open = async (fresh) => {
    if (closed) return;
    if (getToken && (fresh || !currentToken)) {
      if (fetching) return;
      fetching = true;
      let next;
      try {
        next = await getToken();
      } catch (error) {
        fetching = false;
        if (closed) return;
        console.warn("herald: getToken failed", error);
        // A stream still open keeps its token until Herald says it expired; without one, retry.
        if (!source) retryLater();
        return;
      }
      fetching = false;
      if (closed) return;
      currentToken = next;
    }
    connect();
  };

  const connect = () => {
    // The old stream closes in the same task as the new one opens from the last id it handed
    // over, so no event falls between the two; one both send is handed over once.
    drop();
    const params = new URLSearchParams();
    for (const topic of topics) params.append("topic", topic);
    params.set("withTopic", "1");
    if (currentToken) params.set("access_token", currentToken);
    if (lastId) params.set("lastEventId", lastId);
    const es = new EventSourceClass(`${streamPath}?${params}`);
    source = es;
    setStatus("connecting");

    es.onopen = () => {
      if (source !== es) return;
      failures = 0;
      setStatus("open");
    };
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === CLOSED) {
        // Refused (a 401 for a token, a 429 or 503) or not a stream: the EventSource gives up,
        // and a browser does not say which. Ask for a fresh token and retry, backing off.
        drop();
        retryLater();
      } else {
        // The EventSource reconnects by itself after Herald's `retry:`, with `Last-Event-ID`.
        setStatus("connecting");
      }
    };
    const hand = (name) => (message) => {
      if (source !== es) return;
      const id = message.lastEventId;
      if (id && !isAfter(id, lastId)) return;
      if (id) lastId = id;
      const raw = String(message.data);
      const cut = raw.indexOf("\n");
      // With withTopic=1 every event's data opens with its topic's line.
      const [topic, data] = cut < 0 ? [raw, ""] : [raw.slice(0, cut), raw.slice(cut + 1)];
      onEvent({ topic, name, data, id });
    };
    es.onmessage = hand("message");
    for (const name of names) es.addEventListener(name, hand(name));
    es.addEventListener("reset", (message) => {
      if (source !== es) return;
      // Its id is Herald's current position, behind ours when ours was unknown to it: resume
      // from there whatever it is.
      if (message.lastEventId) lastId = message.lastEventId;
      let detail;
      try {
        detail = JSON.parse(message.data);
      } catch {
        detail = { reason: "unknown", message: String(message.data) };
      }
      onReset?.(detail.reason, detail);
    });
    es.addEventListener("token-expired", () => {
      if (source !== es) return;
      // The EventSource would reconnect with the expired token and be refused: reopen now.
      drop();
      if (getToken) {
        setStatus("connecting");
        open(true);
      } else {
        stop();
      }
    });
    scheduleRefresh();
  };

  /** With `getToken`, a fresh token and a reopen shortly before the current one expires. */
  const scheduleRefresh = () => {
    if (!getToken || !currentToken) return;
    const claims = jwtClaims(currentToken);
    if (typeof claims?.exp !== "number") return;
    // What is left of it by this clock; by its `iat` instead when this clock and the issuer's
    // disagree, since Herald's clock, not this one, decides when it expires.
    const now = Date.now();
    const skewed = typeof claims.iat === "number" && Math.abs(now - claims.iat * 1000) > MAX_SKEW;
    const left = skewed ? (claims.exp - claims.iat) * 1000 : claims.exp * 1000 - now;
    if (!(left > 0)) return; // Herald's token-expired will say when
    const delay = Math.min(left - Math.min(REFRESH_LEAD, left / 4), MAX_TIMER);
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      open(true);
    }, delay);
  };

  open(false);
  return { close: stop };
}

/** Whether id `a` comes after `b`. Ids are `<epoch>-<seq>`; within an epoch the sequence grows.
 * An id of another epoch, or one that is not Herald's, counts as new: after a restart Herald
 * says so with a reset, whose id becomes the last one. */
function isAfter(a, b) {
  const x = /^(\d+)-(\d+)$/.exec(a);
  const y = /^(\d+)-(\d+)$/.exec(b);
  if (!x || !y || x[1] !== y[1]) return a !== b;
  return BigInt(x[2]) > BigInt(y[2]);
}

/** The backoff before attempt `n` after failures: 1 s, 2 s, 4 s … up to 30 s, ±50%, so that
 * clients refused together do not come back together. */
function backoff(n) {
  return Math.min(MAX_BACKOFF, 1000 * 2 ** (n - 1)) * (0.5 + Math.random());
}

/** The claims of a JWT, read without verifying (Herald verifies); undefined if unreadable. */
function jwtClaims(jwt) {
  try {
    const part = String(jwt).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}
