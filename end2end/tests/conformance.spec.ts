import { readFileSync } from "node:fs";
import path from "node:path";

import { expect, test } from "@playwright/test";
import { EventSource } from "eventsource";
import { createParser } from "eventsource-parser";

import { baseURL } from "../playwright.config";

/**
 * The corpus of tricky payloads (tests/fixtures/sse-corpus.json), read back by three parsers
 * that share no code with Herald: the npm `eventsource-parser`, the npm `eventsource` client in
 * Node, and Chromium's own EventSource. The Rust suite feeds the same corpus to `eventsource-stream`.
 */
type Case = { name: string; event?: string; data: string };
const cases: Case[] = JSON.parse(
  readFileSync(path.join(__dirname, "../../tests/fixtures/sse-corpus.json"), "utf8"),
).cases;
const eventNames = [...new Set(["message", ...cases.flatMap((c) => (c.event ? [c.event] : []))])];

type Received = { event: string; data: string; id: string };

/** What a client must see: every CRLF and lone CR arrives as LF. */
const asDelivered = (data: string) => data.replace(/\r\n/g, "\n").replace(/\r/g, "\n");

async function publishCorpus(topic: string): Promise<string[]> {
  const token = process.env.HERALD_PUBLISH_TOKEN;
  if (!token) throw new Error("HERALD_PUBLISH_TOKEN is not set; run through `make test`");
  const ids: string[] = [];
  for (const c of cases) {
    const response = await fetch(`${baseURL}/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ topic, event: c.event, data: c.data }),
    });
    expect(response.status, c.name).toBe(202);
    ids.push((await response.json()).id);
  }
  return ids;
}

function expectCorpus(received: Received[], ids: string[]): void {
  expect(received).toHaveLength(cases.length);
  cases.forEach((c, i) => {
    expect(received[i], c.name).toEqual({ event: c.event ?? "message", data: asDelivered(c.data), id: ids[i] });
  });
}

const uniqueTopic = (parser: string) => `conformance-${parser}-${Date.now()}`;

test("eventsource-parser reads every corpus payload back equal", async () => {
  const topic = uniqueTopic("parser");
  const received: Received[] = [];
  const parser = createParser({
    onEvent: (e) => received.push({ event: e.event ?? "message", data: e.data, id: e.id ?? "" }),
  });
  const response = await fetch(`${baseURL}/events?topic=${topic}`);
  expect(response.headers.get("content-type")).toBe("text/event-stream");
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const pumping = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parser.feed(value);
    }
  })();

  const ids = await publishCorpus(topic);
  await expect.poll(() => received.length).toBe(cases.length);
  await reader.cancel();
  await pumping;
  expectCorpus(received, ids);
});

test("the eventsource client in Node reads every corpus payload back equal", async () => {
  const topic = uniqueTopic("node");
  const received: Received[] = [];
  const source = new EventSource(`${baseURL}/events?topic=${topic}`);
  try {
    for (const name of eventNames) {
      source.addEventListener(name, (e) => received.push({ event: e.type, data: e.data, id: e.lastEventId }));
    }
    await new Promise<void>((resolve, reject) => {
      source.onopen = () => resolve();
      source.onerror = (error) => reject(new Error(`the stream failed: ${error.message}`));
    });

    const ids = await publishCorpus(topic);
    await expect.poll(() => received.length).toBe(cases.length);
    expectCorpus(received, ids);
  } finally {
    source.close();
  }
});

test("Chromium's EventSource reads every corpus payload back equal", async ({ page }) => {
  const topic = uniqueTopic("chromium");
  await page.goto("/");
  await page.evaluate(
    ({ topic, eventNames }) =>
      new Promise<void>((resolve) => {
        const received: unknown[] = [];
        (window as unknown as { received: unknown[] }).received = received;
        // `window.`: in this file the bare name is the Node client imported above.
        const source = new window.EventSource(`/events?topic=${topic}`);
        for (const name of eventNames) {
          source.addEventListener(name, (e) => {
            const message = e as MessageEvent<string>;
            received.push({ event: message.type, data: message.data, id: message.lastEventId });
          });
        }
        source.onopen = () => resolve();
      }),
    { topic, eventNames },
  );

  const ids = await publishCorpus(topic);
  const received = () => page.evaluate(() => (window as unknown as { received: Received[] }).received);
  await expect.poll(async () => (await received()).length).toBe(cases.length);
  expectCorpus(await received(), ids);
});
