import { createHmac } from "node:crypto";

import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";

import { OwnServer } from "../support/server";

/**
 * Private topics in a real browser: a server of the spec's own with a JWT secret, and browser
 * contexts that each hold a token minted as an app's backend would (HS256, by hand with Node's
 * HMAC, so the spec needs no JWT library). Each context follows its topic with `EventSource` and
 * the `access_token` query parameter, the only way a browser's `EventSource` can send a token.
 */

const secret = "the end-to-end JWT secret, 32 bytes or more";
const publishToken = process.env.HERALD_PUBLISH_TOKEN ?? "dev-only-publish-token";

const base64url = (text: string) => Buffer.from(text).toString("base64url");

/** An HS256 token that lets its holder follow `topics` for five minutes. */
function subscriberToken(subject: string, topics: string[]): string {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const exp = Math.floor(Date.now() / 1000) + 300;
  const claims = base64url(JSON.stringify({ sub: subject, exp, herald: { subscribe: topics } }));
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

/** What a page's `EventSource` saw: the data of each message, and whether it gave up. */
type Seen = { messages: string[]; closed: boolean };

/** Opens a page on the server in a new context and follows `topic` there, with `token` if given. */
async function follow(browser: Browser, server: OwnServer, topic: string, token?: string): Promise<[BrowserContext, Page]> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/healthz`);
  const query = new URLSearchParams({ topic, ...(token ? { access_token: token } : {}) });
  await page.evaluate((url) => {
    const seen: Seen = { messages: [], closed: false };
    (window as unknown as { seen: Seen }).seen = seen;
    const source = new EventSource(url);
    source.onmessage = (event) => seen.messages.push(event.data);
    // Resolves once the stream is open, or refused: a 401 or 403 is not a stream, so the
    // browser closes the source and does not retry.
    return new Promise<void>((resolve) => {
      source.onopen = () => resolve();
      source.onerror = () => {
        if (source.readyState === EventSource.CLOSED) seen.closed = true;
        resolve();
      };
    });
  }, `/events?${query}`);
  return [context, page];
}

const seen = (page: Page) => page.evaluate(() => (window as unknown as { seen: Seen }).seen);

async function publish(server: OwnServer, topic: string, data: string): Promise<void> {
  const response = await fetch(`${server.url}/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${publishToken}`, "content-type": "application/json" },
    body: JSON.stringify({ topic, data }),
  });
  expect(response.status).toBe(202);
}

test("each token holder hears only its own user's events, and no token hears none", async ({ browser }) => {
  const server = await OwnServer.start("127.0.0.1:0", { HERALD_JWT_SECRET: secret });
  const contexts: BrowserContext[] = [];
  try {
    const [one, onePage] = await follow(browser, server, "user.1", subscriberToken("1", ["user.1"]));
    const [two, twoPage] = await follow(browser, server, "user.2", subscriberToken("2", ["user.2"]));
    const [anonymous, anonymousPage] = await follow(browser, server, "user.1");
    const [borrower, borrowerPage] = await follow(browser, server, "user.2", subscriberToken("1", ["user.1"]));
    contexts.push(one, two, anonymous, borrower);

    await publish(server, "user.1", "for user 1");
    await publish(server, "user.2", "for user 2");
    await publish(server, "user.1", "for user 1 again");

    await expect.poll(async () => (await seen(onePage)).messages).toEqual(["for user 1", "for user 1 again"]);
    await expect.poll(async () => (await seen(twoPage)).messages).toEqual(["for user 2"]);
    for (const refused of [anonymousPage, borrowerPage]) {
      await expect.poll(async () => (await seen(refused)).closed).toBe(true);
      expect((await seen(refused)).messages).toEqual([]);
    }
  } finally {
    for (const context of contexts) await context.close();
    await server.stop();
  }
});
