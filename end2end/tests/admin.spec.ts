import { expect, test } from "@playwright/test";

import { watchForProblems } from "../support/problems";

// The Makefile's development secrets, which `cargo leptos end-to-end` serves with.
const adminToken = process.env.HERALD_ADMIN_TOKEN ?? "dev-only-admin-token";
const publishToken = process.env.HERALD_PUBLISH_TOKEN ?? "dev-only-publish-token";

test("an operator signs in, and the charts move after publishes", async ({ page, request, baseURL }) => {
  const problems = watchForProblems(page);
  await page.goto("/admin");
  await expect(page.getByRole("heading", { level: 1 })).toHaveText("Herald operator");
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();

  await expect(page).toHaveURL(/\/admin$/);
  await expect(page.getByTestId("connection-state")).toHaveText("live");
  const cookie = (await page.context().cookies()).find((cookie) => cookie.name === "herald_admin");
  expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/" });

  // Three subscribers, held open from this test, so that the topic is among the busiest.
  const subscribers = new AbortController();
  const streams = await Promise.all(
    [1, 2, 3].map(() => fetch(`${baseURL}/events?topic=e2e.admin`, { signal: subscribers.signal })),
  );
  streams.forEach((stream) => expect(stream.status).toBe(200));

  const published = page.locator('[data-chart="published"] li[data-series="published"]');
  const line = page.locator('[data-chart="published"] path[data-series="published"]');
  // A few frames first, so that the line exists before the publishes.
  await expect.poll(async () => (await line.getAttribute("d"))?.split(" L").length ?? 0).toBeGreaterThan(2);
  const before = await line.getAttribute("d");

  for (let n = 0; n < 60; n++) {
    const answer = await request.post("/publish", {
      headers: { authorization: `Bearer ${publishToken}` },
      data: { topic: "e2e.admin", data: `event ${n}` },
    });
    expect(answer.status()).toBe(202);
  }
  // The clock alone publishes about one event a second; sixty more make the line jump.
  await expect.poll(async () => Number(await published.getAttribute("data-latest"))).toBeGreaterThan(10);
  expect(await line.getAttribute("d")).not.toBe(before);
  const busiest = page.locator('[data-table="by-subscribers"] tbody tr').filter({ hasText: "e2e.admin" });
  await expect(busiest.locator("td")).toHaveText(["3", "60"]);
  await expect(page.locator('[data-chart="subscribers"] li[data-series="subscribers"]')).toHaveAttribute(
    "data-latest",
    /^[3-9]$|^\d\d+$/,
  );

  subscribers.abort();
  expect(problems).toEqual([]);
});

test("without the cookie the stream is refused, and a wrong token gets the form again", async ({ page, request }) => {
  const stream = await request.get("/admin/stats");
  expect(stream.status()).toBe(401);
  expect((await stream.json()).error).toBe("not-signed-in");

  await page.goto("/admin");
  await page.getByLabel("Admin token").fill("a token that is not the admin token");
  const [answer] = await Promise.all([
    page.waitForResponse((response) => response.url().endsWith("/admin/login")),
    page.getByRole("button", { name: "Sign in" }).click(),
  ]);
  expect(answer.status()).toBe(401);
  await expect(page.getByRole("alert")).toHaveText(/not the admin token/);
  expect((await page.context().cookies()).map((cookie) => cookie.name)).not.toContain("herald_admin");
});
