// The README's screenshot: the page after three jobs were started, one of them still running.
//
//   node end2end/bench/screenshot.mjs http://127.0.0.1:3000 docs/screenshot.png
//
// Needs a server with a worker (`make run`). The picture shows two jobs done and one running.
import { chromium } from "@playwright/test";

import { chromiumLaunchOptions } from "./chromium.mjs";

const [url, file] = process.argv.slice(2);
if (!url || !file) {
  console.error("usage: screenshot.mjs URL FILE.png");
  process.exit(2);
}

const browser = await chromium.launch(chromiumLaunchOptions);
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  await page.goto(url);
  await page.getByText("live", { exact: true }).waitFor();
  const rows = page.locator("[data-testid=jobs] li");
  const done = page.locator("[data-testid=jobs] li[data-status=done]");
  // Two jobs that finish (a job takes 1-5 s), then one that is still running (at least 1 s).
  await page.getByTestId("start-job").click();
  await page.getByTestId("start-job").click();
  await done.nth(1).waitFor({ timeout: 15_000 });
  await page.getByTestId("start-job").click();
  await rows.nth(2).waitFor();
  const statuses = () => rows.evaluateAll((items) => items.map((item) => item.dataset.status));
  await page.screenshot({ path: file });
  console.log(`wrote ${file}: ${(await statuses()).join(", ")}`);
} finally {
  await browser.close();
}
