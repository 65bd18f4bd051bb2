// Time from navigation to the first clock tick in the DOM, in headless Debian Chromium.
//
//   node end2end/bench/first-tick.mjs http://127.0.0.1:PORT [loads]
//
// Each load runs in a fresh browser context (cold cache). The baseline, measured in the same
// loads, is DOMContentLoaded: the server-rendered page is parsed. The difference is the price of
// loading the wasm, hydrating and opening the EventSource. Prints medians and their ratio.
import { chromium } from "@playwright/test";

import { chromiumLaunchOptions } from "./chromium.mjs";

const [url, loadsArg] = process.argv.slice(2);
if (!url) {
  console.error("usage: first-tick.mjs URL [loads]");
  process.exit(2);
}
const loads = Number(loadsArg ?? 10);

const browser = await chromium.launch(chromiumLaunchOptions);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const firstTick = [];
const domReady = [];
try {
  for (let i = 0; i < loads; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Records, relative to navigation start, when the first tick enters the list.
    await page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.querySelector("[data-testid=ticks] li")) {
          window.__firstTickAt = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await page.goto(url);
    await page.waitForFunction(() => window.__firstTickAt !== undefined, null, { timeout: 10_000 });
    firstTick.push(await page.evaluate(() => window.__firstTickAt));
    domReady.push(
      await page.evaluate(() => performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd),
    );
    await context.close();
  }
} finally {
  await browser.close();
}

const tick = median(firstTick);
const ready = median(domReady);
console.log(`loads: ${loads}`);
console.log(`baseline  DOMContentLoaded  median ${ready.toFixed(0)} ms`);
console.log(`measured  first tick in DOM median ${tick.toFixed(0)} ms  (${(tick / ready).toFixed(2)}x baseline)`);
console.log(`first tick per load (ms): ${firstTick.map((t) => t.toFixed(0)).join(" ")}`);
