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

test("the job list is a polite live region: a finished job is added to it, and the clock's ticks leave it alone", async ({
  page,
}) => {
  await openHome(page);
  const list = page.getByTestId("jobs");
  await expect(list).toHaveAttribute("aria-live", "polite");

  await page.getByTestId("start-job").click();
  const done = list.locator("li[data-status=done]");
  await expect(done).toHaveCount(1, { timeout: 10_000 });
  // What a screen reader reads out: the row's text, the visually hidden "Job" first.
  await expect(done).toHaveText(/^Job \S{8}\s*done\s*\d+\.\d s/);

  // Three ticks later the list has not changed at all, so there was nothing to announce.
  const changes = await list.evaluate(
    (element) =>
      new Promise<number>((resolve) => {
        let changes = 0;
        const listWatch = new MutationObserver((records) => (changes += records.length));
        listWatch.observe(element, { subtree: true, childList: true, characterData: true, attributes: true });
        const count = document.querySelector("[data-testid=count]")!;
        const start = Number(count.textContent);
        const tickWatch = new MutationObserver(() => {
          if (Number(count.textContent) < start + 3) return;
          listWatch.disconnect();
          tickWatch.disconnect();
          resolve(changes);
        });
        tickWatch.observe(count, {
          subtree: true,
          childList: true,
          characterData: true,
        });
      }),
  );
  expect(changes).toBe(0);
});
