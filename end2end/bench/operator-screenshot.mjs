// docs/operations.md's screenshot of the operator page: two instances sharing Redis, with
// subscribers on both, a publisher whose rate rises and falls, a few refused publishes and a
// few resumes that get a reset, watched for a minute and a half.
//
//   make run-cluster   # in another terminal: instances at :3000 and :3001
//   node end2end/bench/operator-screenshot.mjs http://127.0.0.1:3000 http://127.0.0.1:3001 docs/operator-page.png
//
// Uses the Makefile's development tokens unless HERALD_ADMIN_TOKEN / HERALD_PUBLISH_TOKEN say otherwise.
import { chromium } from "@playwright/test";

import { chromiumLaunchOptions } from "./chromium.mjs";

const [first, second, file] = process.argv.slice(2);
if (!first || !second || !file) {
  console.error("usage: operator-screenshot.mjs URL_A URL_B FILE.png");
  process.exit(2);
}
const adminToken = process.env.HERALD_ADMIN_TOKEN ?? "dev-only-admin-token";
const publishToken = process.env.HERALD_PUBLISH_TOKEN ?? "dev-only-publish-token";
const topics = ["news", "orders.eu", "orders.us", "chat.lobby", "status"];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Subscribers, more of them on the first topics; each body is read so that nothing backs up.
const subscribers = new AbortController();
const follow = async (url, topic, headers = {}) => {
  const response = await fetch(`${url}/events?topic=${topic}`, { signal: subscribers.signal, headers });
  response.body.pipeTo(new WritableStream()).catch(() => {});
};
for (let n = 0; n < 60; n++) await follow(n % 3 ? first : second, topics[n % 7 < 3 ? 0 : n % topics.length]);

let publishing = true;
const publisher = (async () => {
  for (let tick = 0; publishing; tick++) {
    const perSecond = 20 + 15 * Math.sin(tick / 60);
    const url = tick % 2 ? first : second;
    await fetch(`${url}/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${publishToken}`, "content-type": "application/json" },
      body: JSON.stringify({ topic: topics[tick % topics.length], data: `update ${tick}` }),
    });
    if (tick % 150 === 0) await fetch(`${url}/publish`, { method: "POST", body: "{}" }); // 401
    if (tick % 400 === 0) await follow(url, "news", { "last-event-id": "not-an-id" }); // a reset
    await sleep(1000 / perSecond);
  }
})();

const browser = await chromium.launch(chromiumLaunchOptions);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`${first}/admin`);
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("live", { exact: true }).waitFor();
  await sleep(90_000);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`wrote ${file}`);
} finally {
  publishing = false;
  await publisher;
  subscribers.abort();
  await browser.close();
}
