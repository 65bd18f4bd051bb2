import { expect, test, type Page } from "@playwright/test";

/** The job rows shown, as their ids and statuses. */
async function jobsShown(page: Page): Promise<{ id: string; status: string }[]> {
  return page.locator("[data-testid=jobs] li").evaluateAll((rows) =>
    rows.map((row) => ({ id: row.getAttribute("data-job") ?? "", status: row.getAttribute("data-status") ?? "" })),
  );
}

async function openHome(page: Page): Promise<void> {
  await page.goto("/");
  await expect(page.getByTestId("connection-state")).toHaveText("live");
}

test("three jobs started together all complete within 10 s", async ({ page }) => {
  await openHome(page);

  for (let i = 0; i < 3; i++) await page.getByTestId("start-job").click();
  await expect.poll(async () => (await jobsShown(page)).length).toBe(3);

  await expect
    .poll(async () => (await jobsShown(page)).filter((job) => job.status === "done").length, { timeout: 10_000 })
    .toBe(3);
  const rows = page.locator("[data-testid=jobs] li");
  for (let i = 0; i < 3; i++) {
    await expect(rows.nth(i).locator(".job-took")).toHaveText(/^\d+\.\d s$/);
    await expect(rows.nth(i).locator(".job-result")).toContainText('"answer":42');
  }
});

test("two browser sessions each see only their own jobs", async ({ browser }) => {
  const [alice, bob] = [await browser.newContext(), await browser.newContext()];
  try {
    const [alicePage, bobPage] = [await alice.newPage(), await bob.newPage()];
    await openHome(alicePage);
    await openHome(bobPage);

    await alicePage.getByTestId("start-job").click();
    await bobPage.getByTestId("start-job").click();
    await bobPage.getByTestId("start-job").click();

    for (const [page, count] of [[alicePage, 1], [bobPage, 2]] as const) {
      await expect
        .poll(async () => (await jobsShown(page)).filter((job) => job.status === "done").length, {
          timeout: 10_000,
        })
        .toBe(count);
    }
    const aliceIds = (await jobsShown(alicePage)).map((job) => job.id);
    const bobIds = (await jobsShown(bobPage)).map((job) => job.id);
    expect(aliceIds).toHaveLength(1);
    expect(bobIds).toHaveLength(2);
    expect(bobIds).not.toContain(aliceIds[0]);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("a reload mid-job still shows the job, then its completion, once", async ({ page }) => {
  await openHome(page);
  await page.getByTestId("start-job").click();
  await expect.poll(async () => (await jobsShown(page)).length).toBe(1);
  const [started] = await jobsShown(page);
  expect(started.status).toBe("running");

  // Jobs take at least a second, so this reload lands while the worker is still at it.
  await page.reload();

  await expect.poll(async () => (await jobsShown(page)).map((job) => job.id)).toEqual([started.id]);
  await expect
    .poll(async () => (await jobsShown(page))[0]?.status, { timeout: 10_000 })
    .toBe("done");
  expect(await jobsShown(page)).toEqual([{ id: started.id, status: "done" }]);
});
