// herald.js against the real Herald binary: topics, resume after a cut, resets, token refresh
// and expiry, a refused open, and close(). Run with `make test-js`, or
// `node --test clients/js/test/*.test.js` (HERALD_BIN: the binary; target/debug/herald by default).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { EventSource } from "eventsource";

import { follow } from "../herald.js";
import { PUBLISH_TOKEN, mintToken, publish, recorder, startHerald, startProxy } from "../testing/herald.js";

/** Long enough for a reconnection with backoff; a test that waits longer has failed. */
const timeout = 20_000;

let herald;
before(async () => {
  herald = await startHerald();
});
after(() => herald.stop());

/** Follows with the recorder's callbacks and Node's EventSource; closed when the test ends. */
function following(t, record, options) {
  const followed = follow({ EventSource, onEvent: record.onEvent, onReset: record.onReset, onStatus: record.onStatus, ...options });
  t.after(() => followed.close());
  return followed;
}

/** What a test compares: each event without its id, which the test checks apart. */
const seen = (record) => record.events.map(({ topic, name, data }) => ({ topic, name, data }));

test("events of two topics arrive once each, with their topic, name and data", { timeout }, async (t) => {
  const record = recorder();
  following(t, record, { url: herald.url, topics: ["public.a", "public.b"], events: ["export.done"] });
  await record.until(() => record.status === "open");

  const ids = [
    await publish(herald, "public.a", "one"),
    await publish(herald, "public.b", '{"file":"report.csv"}', "export.done"),
    await publish(herald, "public.a", "two\nlines"),
    await publish(herald, "public.b", ""),
  ];
  await record.until(() => record.events.length === 4);

  assert.deepEqual(seen(record), [
    { topic: "public.a", name: "message", data: "one" },
    { topic: "public.b", name: "export.done", data: '{"file":"report.csv"}' },
    { topic: "public.a", name: "message", data: "two\nlines" },
    { topic: "public.b", name: "message", data: "" },
  ]);
  assert.deepEqual(record.events.map((event) => event.id), ids);
  assert.deepEqual(record.statuses, ["connecting", "open"]);
});

test("after a cut connection the client resumes with what it missed, nothing lost or twice", { timeout }, async (t) => {
  const proxy = await startProxy(herald.url);
  t.after(() => proxy.stop());
  const record = recorder();
  following(t, record, { url: proxy.url, topics: ["public.resume"] });
  await record.until(() => record.status === "open");
  const published = [];
  for (const data of ["1", "2"]) published.push(await publish(herald, "public.resume", data));
  await record.until(() => record.events.length === 2);

  // The network drops, and stays down while three events are published.
  proxy.hold();
  proxy.cut();
  await record.until(() => record.status === "connecting");
  for (const data of ["3", "4", "5"]) published.push(await publish(herald, "public.resume", data));
  proxy.release();
  await record.until(() => record.statuses.at(-1) === "open" && record.statuses.length === 4);
  published.push(await publish(herald, "public.resume", "6"));
  await record.until(() => record.events.length >= 6);

  assert.deepEqual(record.events.map((event) => event.data), ["1", "2", "3", "4", "5", "6"]);
  assert.deepEqual(record.events.map((event) => event.id), published);
  assert.deepEqual(record.statuses, ["connecting", "open", "connecting", "open"]);
});

test("when Herald replays events the client already has, none is handed over twice", { timeout }, async (t) => {
  // A proxy that resumes every reconnection from the first event, as a server that lost track
  // of the client's place would.
  let first;
  const proxy = await startProxy(herald.url, {
    rewrite: (request) => (first ? request.replace(/^last-event-id: .*$/im, `Last-Event-ID: ${first}`) : request),
  });
  t.after(() => proxy.stop());
  const record = recorder();
  following(t, record, { url: proxy.url, topics: ["public.again"] });
  await record.until(() => record.status === "open");
  first = await publish(herald, "public.again", "1");
  await publish(herald, "public.again", "2");
  await record.until(() => record.events.length === 2);

  proxy.cut();
  await record.until(() => record.statuses.length === 4);
  await publish(herald, "public.again", "3");
  await record.until(() => record.events.length >= 3);

  assert.deepEqual(record.events.map((event) => event.data), ["1", "2", "3"]);
});

test("a resume Herald cannot make exact reaches onReset with its reason, and the stream goes on", { timeout }, async (t) => {
  const proxy = await startProxy(herald.url);
  t.after(() => proxy.stop());
  const record = recorder();
  // An id of another run of the server, as a page kept it across a Herald restart.
  following(t, record, { url: proxy.url, topics: ["public.reset"], lastEventId: "1-1" });
  await record.until(() => record.resets.length === 1);

  assert.equal(record.resets[0].reason, "other-incarnation");
  assert.equal(record.resets[0].detail.reason, "other-incarnation");
  assert.match(record.resets[0].detail.message, /\w/);
  assert.deepEqual(record.events, [], "a reset is not an event");

  // The connection drops and the next attempt is refused, so the client opens anew itself:
  // from the reset's id, without a second reset.
  proxy.refuse(1);
  proxy.cut();
  await record.until(() => record.statuses.length === 4);
  const live = await publish(herald, "public.reset", "after the reset");
  await record.until(() => record.events.length === 1);

  assert.deepEqual(record.events.map((event) => [event.id, event.data]), [[live, "after the reset"]]);
  assert.equal(record.resets.length, 1);
  assert.deepEqual(record.statuses, ["connecting", "open", "connecting", "open"]);
});

test("after a reset for an id ahead of Herald's, the events that follow are not taken for repeats", { timeout }, async (t) => {
  const [epoch] = (await publish(herald, "public.ahead", "before")).split("-");
  const record = recorder();
  following(t, record, { url: herald.url, topics: ["public.ahead"], lastEventId: `${epoch}-999999999` });
  await record.until(() => record.resets.length === 1);
  const id = await publish(herald, "public.ahead", "after");
  await record.until(() => record.events.length === 1);

  assert.equal(record.resets[0].reason, "unknown-id");
  assert.deepEqual(record.events, [{ topic: "public.ahead", name: "message", data: "after", id }]);
});

/** Publishes `data` of `count` events to `topic`, one every `gap` ms; resolves to their ids. */
async function publishSteadily(topic, count, gap) {
  const ids = [];
  for (let n = 0; n < count; n += 1) {
    ids.push(await publish(herald, topic, `event ${n}`));
    await new Promise((resolve) => setTimeout(resolve, gap));
  }
  return ids;
}

test("a short-lived token is refreshed before it expires, without losing or repeating an event", { timeout }, async (t) => {
  const record = recorder();
  const expiries = [];
  const early = [];
  const getToken = async () => {
    // Each fresh token is asked for before the one in use expires.
    if (expiries.length > 0) early.push(Date.now() < expiries.at(-1) * 1000);
    const now = Math.floor(Date.now() / 1000);
    expiries.push(now + 2);
    return mintToken(["user.42"], { iat: now, exp: now + 2 });
  };
  // Each new connection takes 300 ms: events published meanwhile reach the client only by
  // its resume from the last id.
  const proxy = await startProxy(herald.url, { latency: 300 });
  t.after(() => proxy.stop());
  following(t, record, { url: proxy.url, topics: ["user.42"], getToken });
  await record.until(() => record.status === "open");

  // 4 s of events, through at least two refreshes.
  const ids = await publishSteadily("user.42", 80, 50);
  await record.until(() => record.events.at(-1)?.id === ids.at(-1));

  assert.ok(early.length >= 2, `${early.length + 1} tokens`);
  assert.ok(early.every(Boolean), `asked for after expiry: ${early}`);
  assert.deepEqual(record.events.map((event) => event.id), ids);
  assert.deepEqual(record.resets, []);
});

test("a token whose expiry the client cannot foresee is replaced when Herald says it expired", { timeout }, async (t) => {
  const record = recorder();
  let calls = 0;
  // Issued "50 s from now", as by a backend whose clock is ahead: its lifetime reads as
  // negative here, so the client has only Herald's token-expired to go by.
  const getToken = async () => {
    calls += 1;
    const now = Math.floor(Date.now() / 1000);
    return mintToken(["user.7"], { iat: now + 50, exp: now + 2 });
  };
  const proxy = await startProxy(herald.url, { latency: 300 });
  t.after(() => proxy.stop());
  following(t, record, { url: proxy.url, topics: ["user.7"], getToken });
  await record.until(() => record.status === "open");

  const ids = await publishSteadily("user.7", 60, 50);
  await record.until(() => record.events.at(-1)?.id === ids.at(-1));

  assert.ok(calls >= 2, `getToken called ${calls} times`);
  assert.deepEqual(record.events.map((event) => event.id), ids);
});

test("an open refused for its token asks getToken again and then follows", { timeout }, async (t) => {
  const record = recorder();
  const tokens = [mintToken(["user.9"], {}, "another secret of 32 bytes or more, not Herald's"), mintToken(["user.9"])];
  let calls = 0;
  following(t, record, { url: herald.url, topics: ["user.9"], getToken: async () => tokens[calls++] });
  await record.until(() => record.status === "open");
  const id = await publish(herald, "user.9", "hello");
  await record.until(() => record.events.length === 1);

  assert.equal(calls, 2);
  assert.deepEqual(record.events, [{ topic: "user.9", name: "message", data: "hello", id }]);
});

test("a fixed token that expires closes the stream", { timeout }, async (t) => {
  const record = recorder();
  const now = Math.floor(Date.now() / 1000);
  following(t, record, { url: herald.url, topics: ["user.3"], token: mintToken(["user.3"], { exp: now + 2 }) });
  await record.until(() => record.status === "closed");

  assert.deepEqual(record.statuses, ["connecting", "open", "closed"]);
});

test("after close() nothing keeps the process alive", { timeout }, async (t) => {
  // A process of its own that follows with a refreshing token, gets one event, closes, and must
  // then exit by itself: a timer or connection left behind would keep it running.
  const script = `
    import { EventSource } from "eventsource";
    import { follow } from "./herald.js";
    import { mintToken } from "./testing/herald.js";
    const followed = follow({
      url: process.env.HERALD_URL, topics: ["user.5"], EventSource,
      getToken: async () => mintToken(["user.5"]),
      onEvent: (event) => { console.log(event.data); followed.close(); },
      onStatus: async (status) => {
        if (status === "open") await fetch(process.env.HERALD_URL + "/publish", {
          method: "POST", body: JSON.stringify({ topic: "user.5", data: "the one event" }),
          headers: { authorization: "Bearer " + process.env.PUBLISH_TOKEN, "content-type": "application/json" },
        });
      },
    });`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: { ...process.env, HERALD_URL: herald.url, PUBLISH_TOKEN },
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(() => child.kill());
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  const [code] = await once(child, "exit");

  assert.equal(code, 0);
  assert.equal(output, "the one event\n");
});
