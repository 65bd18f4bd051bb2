// What the client's tests run against: the real Herald binary on 127.0.0.1 port 0, a TCP proxy
// in front of it that can cut and hold connections, publishing, and HS256 tokens.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer, connect } from "node:net";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

/** The binary: $HERALD_BIN, else the one `cargo build` / `cargo test` leaves in target/debug. */
export const HERALD_BIN = process.env.HERALD_BIN ?? fileURLToPath(new URL("../../../target/debug/herald", import.meta.url));
export const PUBLISH_TOKEN = "js-client-test-publish-token";
export const JWT_SECRET = "the JS client tests' secret, 32 bytes or more";
/** Topics under `public.` need no token. */
export const PUBLIC_TOPICS = "public.**";

/** Starts Herald with `env` on top of the tests' settings; resolves once it listens. */
export async function startHerald(env = {}) {
  const child = spawn(HERALD_BIN, [], {
    // Only what the test says: a HERALD_* variable of the caller's would change the server.
    env: {
      LEPTOS_SITE_ADDR: "127.0.0.1:0",
      HERALD_PUBLISH_TOKEN: PUBLISH_TOKEN,
      HERALD_JWT_SECRET: JWT_SECRET,
      HERALD_PUBLIC_TOPICS: PUBLIC_TOPICS,
      // Reconnections after a cut come back within a few hundred ms, not 3 s.
      HERALD_RETRY: "200ms",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const found = /listening on (http:\/\/\S+)/.exec(log);
      if (found) resolve(found[1]);
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${HERALD_BIN} exited (${code}) before listening:\n${log}`)));
  });
  return {
    url,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGKILL");
        await once(child, "exit");
      }
    },
  };
}

/** Publishes `data` to `topic` (as event `event`, if given); resolves to the event's id. */
export async function publish(herald, topic, data, event) {
  const response = await fetch(`${herald.url}/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${PUBLISH_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ topic, data, ...(event ? { event } : {}) }),
  });
  const body = await response.json();
  if (response.status !== 202) throw new Error(`publish answered ${response.status}: ${JSON.stringify(body)}`);
  return body.id;
}

/** An HS256 subscriber token for `topics`; `claims` override the defaults (`exp` in 10 minutes). */
export function mintToken(topics, claims = {}, secret = JWT_SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part({
    sub: "js-client-test",
    iat: now,
    exp: now + 600,
    herald: { subscribe: topics },
    ...claims,
  })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/**
 * A TCP proxy to `target` (an http://host:port URL): `cut()` ends every connection through it,
 * as a network drop would; while `hold()` is on, new connections wait unanswered until
 * `release()`; `refuse(n)` answers the next `n` with a 503. Options: `latency`, the ms each new
 * connection waits before it reaches Herald, and `rewrite`, which may change what a client sends
 * first (its request).
 */
export async function startProxy(target, { latency = 0, rewrite = (request) => request } = {}) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  let held = [];
  let holding = false;
  let refusals = 0;
  const pipe = (client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    let first = true;
    client.on("data", (chunk) => {
      upstream.write(first ? rewrite(chunk.toString("latin1")) : chunk, first ? "latin1" : undefined);
      first = false;
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on("error", end);
      socket.on("close", end);
    }
  };
  const server = createServer((client) => {
    client.on("error", () => {});
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    if (refusals > 0) {
      refusals -= 1;
      client.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    } else if (holding) {
      held.push(client);
    } else if (latency > 0) {
      held.push(client);
      setTimeout(() => {
        held = held.filter((waiting) => waiting !== client);
        if (!client.destroyed) pipe(client);
      }, latency);
    } else {
      pipe(client);
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    hold() {
      holding = true;
    },
    refuse(count) {
      refusals = count;
    },
    release() {
      holding = false;
      const waiting = held;
      held = [];
      for (const client of waiting) if (!client.destroyed) pipe(client);
    },
    async stop() {
      this.cut();
      server.close();
      await once(server, "close");
    },
  };
}

/**
 * What a `follow` reports, to await: `events`, `resets`, `statuses`, and `until(check)`, which
 * resolves once `check()` holds after a report (or at once if it holds already).
 */
export function recorder() {
  const waiters = new Set();
  const record = {
    events: [],
    resets: [],
    statuses: [],
    onEvent: (event) => record.note(record.events.push(event)),
    onReset: (reason, detail) => record.note(record.resets.push({ reason, detail })),
    onStatus: (status) => record.note(record.statuses.push(status)),
    note() {
      for (const waiter of waiters) waiter();
    },
    until(check) {
      return new Promise((resolve) => {
        const waiter = () => {
          if (check()) {
            waiters.delete(waiter);
            resolve();
          }
        };
        waiters.add(waiter);
        waiter();
      });
    },
    /** The last status reported. */
    get status() {
      return record.statuses.at(-1);
    },
  };
  return record;
}
