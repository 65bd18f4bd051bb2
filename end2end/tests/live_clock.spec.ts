import { expect, test, type Page } from "@playwright/test";

import { watchForProblems } from "../support/problems";
import { OwnServer } from "../support/server";

/** The ticks in the list, oldest first, as their raw RFC 3339 timestamps. */
async function ticksShown(page: Page): Promise<string[]> {
  const stamps = await page
    .getByTestId("ticks")
    .locator("li")
    .evaluateAll((items) => items.map((item) => item.getAttribute("data-ts") ?? ""));
  return stamps.reverse();
}

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the server-rendered page has the heading, the connecting state and an empty list", async ({ page }) => {
    const response = await page.goto("/");

    expect(response?.status()).toBe(200);
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Herald");
    await expect(page.getByTestId("connection-state")).toHaveText("connecting");
    await expect(page.getByTestId("ticks").locator("li")).toHaveCount(0);
  });
});

test("timestamps stream in about a second apart, and each is logged to the console", async ({ page }) => {
  const logged: string[] = [];
  page.on("console", (message) => {
    const tick = /^herald tick (\S+)$/.exec(message.text());
    if (tick) logged.push(tick[1]);
  });

  await page.goto("/");
  // The first tick comes at once, then one on every wall-clock second: 4 ticks fit in 5 s.
  await expect
    .poll(async () => (await ticksShown(page)).length, { timeout: 5_000 })
    .toBeGreaterThanOrEqual(4);

  const stamps = await ticksShown(page);
  const times = stamps.map((stamp) => Date.parse(stamp));
  times.forEach((time, i) => expect(time, `tick ${stamps[i]}`).not.toBeNaN());
  for (let i = 1; i < times.length; i++) {
    expect(times[i], `${stamps[i - 1]} then ${stamps[i]}`).toBeGreaterThan(times[i - 1]);
  }
  // The gap after the immediate first tick can be short; the ones after it are on the second.
  for (let i = 2; i < times.length; i++) {
    expect(times[i] - times[i - 1], `${stamps[i - 1]} then ${stamps[i]}`).toBeGreaterThan(850);
    expect(times[i] - times[i - 1], `${stamps[i - 1]} then ${stamps[i]}`).toBeLessThan(1150);
  }
  await expect(page.getByTestId("connection-state")).toHaveText("live");
  const newest = stamps[stamps.length - 1];
  await expect(page.getByTestId("latest")).toHaveText(/^\d{2}:\d{2}:\d{2}$/);
  expect(Number(await page.getByTestId("count").textContent())).toBeGreaterThanOrEqual(stamps.length);
  expect(logged).toEqual(expect.arrayContaining(stamps));
  expect(newest.endsWith("Z")).toBe(true);
});

test("a first page load logs no console errors and has no failed requests", async ({ page }) => {
  const problems = watchForProblems(page);

  await page.goto("/");
  await expect(page.getByTestId("connection-state")).toHaveText("live");
  await expect.poll(async () => (await ticksShown(page)).length).toBeGreaterThanOrEqual(2);

  expect(problems).toEqual([]);
});

test("the page hydrates under its Content-Security-Policy without a violation", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) violations.push(message.text());
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) =>
      console.error(`Refused to load: ${event.violatedDirective} ${event.blockedURI}`),
    );
  });

  const response = await page.goto("/");
  expect(response?.headers()["content-security-policy"]).toContain("'wasm-unsafe-eval'");
  await expect(page.getByTestId("connection-state")).toHaveText("live");
  await expect.poll(async () => (await ticksShown(page)).length).toBeGreaterThanOrEqual(2);

  expect(violations).toEqual([]);
});

test("the session cookie is not readable from script", async ({ page, context }) => {
  await page.goto("/");
  await expect(page.getByTestId("connection-state")).toHaveText("live");

  const cookies = await context.cookies();
  expect(cookies.find((cookie) => cookie.name === "herald_session")?.httpOnly).toBe(true);
  expect(await page.evaluate(() => document.cookie)).not.toContain("herald_session");
});

test("the list shows the newest tick first", async ({ page }) => {
  // The cap of 20 entries is a unit test of the component (live_clock.rs).
  await page.goto("/");
  await expect.poll(async () => (await ticksShown(page)).length).toBeGreaterThanOrEqual(3);
  const newestFirst = await page
    .getByTestId("ticks")
    .locator("li")
    .evaluateAll((items) => items.map((item) => Date.parse(item.getAttribute("data-ts") ?? "")));
  expect([...newestFirst].sort((a, b) => b - a)).toEqual(newestFirst);
});

test("when the server shuts down the page hears it, says reconnecting, then goes live again, ticks resume and it shows the reset", async ({
  page,
}) => {
  let server = await OwnServer.start();
  try {
    await page.goto(server.url);
    const state = page.getByTestId("connection-state");
    await expect(state).toHaveText("live");
    await expect.poll(async () => (await ticksShown(page)).length).toBeGreaterThanOrEqual(2);

    const farewell = page.waitForEvent("console", (message) => message.text().includes("server is shutting down"));
    await server.stop();
    await farewell;
    await expect(state).toHaveText("reconnecting");
    const shownWhileDown = await ticksShown(page);

    server = await OwnServer.start(server.address);
    // The browser retries after the server's `retry:` hint (3 s by default).
    await expect(state).toHaveText("live", { timeout: 10_000 });
    await expect
      .poll(async () => (await ticksShown(page)).length, { timeout: 5_000 })
      .toBeGreaterThan(shownWhileDown.length);
    const resumed = await ticksShown(page);
    expect(Date.parse(resumed[resumed.length - 1])).toBeGreaterThan(
      Date.parse(shownWhileDown[shownWhileDown.length - 1]),
    );

    // The new run cannot replay from the old run's ids: the stream opened with a reset, which the
    // page shows with its reason (not only in the console) until it is dismissed.
    const notice = page.getByTestId("reset-notice");
    await expect(notice).toContainText("comes from an earlier run of the server");
    await expect(page.getByRole("status").filter({ has: notice })).toHaveAttribute("aria-live", "polite");
    await page.getByTestId("dismiss-reset").click();
    await expect(notice).toHaveCount(0);
  } finally {
    await server.stop();
  }
});

test("an unknown path renders the app's 404 page", async ({ page }) => {
  const response = await page.goto("/no/such/page");

  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Page not found");
});
