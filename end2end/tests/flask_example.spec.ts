import { createHmac } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import path from "node:path";

import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";

import { freePorts, Listening } from "../support/process";
import { OwnServer, projectRoot } from "../support/server";

/**
 * The Flask example (examples/flask) in a real browser, as `make example` runs it: Herald with a
 * JWT secret, the Flask app from its venv, and a worker. Users log in to Flask; each page follows
 * its user's private topic on Herald with the client Herald serves and a token Flask mints.
 *
 * Most tests play the worker themselves (`TestWorker`), so that they choose the moment an export
 * finishes: during a reload, or while Herald is down. One runs the example's own worker.py.
 */

const python = path.join(projectRoot, "examples/flask/.venv/bin/python");
const jwtSecret = "the example spec's JWT secret, 32 bytes or more";
const callbackSecret = "the example spec's callback secret";

/** The worker's side of the signature scheme, as clients/python/herald.py signs. */
function sign(job: string, body: string): string {
  const t = Math.floor(Date.now() / 1000);
  return `t=${t},v2=${createHmac("sha256", callbackSecret).update(`${t}.${job}.${body}`).digest("hex")}`;
}

/** A worker that takes jobs from Flask and reports each when the test says so. */
class TestWorker {
  private jobs = new Map<string, string>();
  private waiting: ((job: string) => void)[] = [];

  private constructor(private server: http.Server) {}

  static async start(): Promise<TestWorker> {
    const server = http.createServer();
    const worker = new TestWorker(server);
    server.on("request", (request, response) => {
      let body = "";
      request.setEncoding("utf8").on("data", (chunk) => (body += chunk));
      request.on("end", () => {
        const { job, callback } = JSON.parse(body) as { job: string; callback: string };
        worker.jobs.set(job, callback);
        worker.waiting.shift()?.(job);
        response.writeHead(202, { "content-type": "application/json" }).end(JSON.stringify({ job }));
      });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return worker;
  }

  get url(): string {
    const { port } = this.server.address() as import("node:net").AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** The next job Flask hands over (one already handed over and not yet awaited comes first). */
  nextJob(): Promise<string> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Reports `job` done to Flask, signed; resolves to Flask's answer status. */
  async finish(job: string): Promise<number> {
    const body = JSON.stringify({ status: "done", result: { file: `export-${job}.csv`, rows: 42 } });
    const response = await fetch(this.jobs.get(job)!, {
      method: "POST",
      headers: { "content-type": "application/json", "herald-signature": sign(job, body) },
      body,
    });
    return response.status;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** Herald, Flask and a worker, on free loopback ports. */
class Example {
  private constructor(
    public herald: OwnServer,
    readonly flask: Listening,
    private readonly heraldEnv: Record<string, string>,
  ) {}

  /** Starts Herald and Flask, with the worker at `workerUrl`. */
  static async start(workerUrl: string): Promise<Example> {
    // Herald must allow the page's origin before Flask listens, so Flask's port is chosen first.
    const [flaskPort] = await freePorts(1);
    const heraldEnv = {
      HERALD_JWT_SECRET: jwtSecret,
      HERALD_CORS_ALLOW_ORIGINS: `http://127.0.0.1:${flaskPort}`,
      // Reconnections come back within a few hundred ms, not 3 s.
      HERALD_RETRY: "200ms",
    };
    const herald = await OwnServer.start("127.0.0.1:0", heraldEnv);
    const flask = await Listening.start(python, ["examples/flask/app.py"], {
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        EXAMPLE_ADDR: `127.0.0.1:${flaskPort}`,
        HERALD_URL: herald.url,
        HERALD_JWT_SECRET: jwtSecret,
        EXAMPLE_WORKER_URL: workerUrl,
        EXAMPLE_CALLBACK_SECRET: callbackSecret,
        EXAMPLE_SECRET_KEY: "the example spec's session key",
      },
      listening: /listening on http:\/\/(\S+)/,
    });
    return new Example(herald, flask, heraldEnv);
  }

  /** Stops Herald and starts it again on the same address: a new incarnation, with no history. */
  async restartHerald(): Promise<void> {
    await this.herald.stop();
    this.herald = await OwnServer.start(this.herald.address, this.heraldEnv);
  }

  async stop(): Promise<void> {
    await Promise.all([this.flask.stop(), this.herald.stop()]);
  }
}

/** The browser contexts a test opened, closed after it. */
const contexts: BrowserContext[] = [];
test.afterEach(async () => {
  await Promise.all(contexts.splice(0).map((context) => context.close()));
});

/** A new browser context logged in to the example as `name`, on its exports page, following live. */
async function logIn(browser: Browser, example: Example, name: string): Promise<Page> {
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  await page.goto(`${example.flask.url}/login`);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Password").fill(name);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(new RegExp(`^${name}'s exports$`, "i"));
  await expect(page.locator("#live")).toHaveText("live");
  return page;
}

/** Clicks "Start export" and resolves to the export's id once its row shows it running. */
async function startExport(page: Page, worker?: TestWorker): Promise<string> {
  const handedOver = worker?.nextJob();
  const started = page.waitForResponse((response) => response.url().endsWith("/exports") && response.request().method() === "POST");
  await page.getByRole("button", { name: "Start export" }).click();
  const { id } = (await (await started).json()) as { id: string };
  await expect(row(page, id)).toHaveAttribute("data-status", "running");
  if (handedOver) expect(await handedOver).toBe(id);
  return id;
}

/**
 * Reloads `page` and holds Herald's client until the returned function is called: the page's
 * list is there, and it does not follow its topic yet.
 */
async function reloadHoldingTheClient(page: Page): Promise<() => void> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route("**/client/herald.js", async (route) => {
    await held;
    await route.continue();
  });
  await page.reload({ waitUntil: "commit" });
  return release;
}

const row = (page: Page, id: string) => page.locator(`#exports li[data-export="${id}"]`);

/** Each row's export id, in the order shown. */
const shownExports = (page: Page) =>
  page.locator("#exports li").evaluateAll((rows) => rows.map((li) => (li as HTMLElement).dataset.export));

/** Waits until `id`'s row says done, and checks that it is shown once. */
async function expectDone(page: Page, id: string): Promise<void> {
  await expect(row(page, id)).toHaveAttribute("data-status", "done");
  await expect(row(page, id).locator(".file")).toHaveText(`export-${id}.csv, 42 rows`);
  expect((await shownExports(page)).filter((shown) => shown === id)).toHaveLength(1);
}

test.describe("the Flask example", () => {
  let worker: TestWorker;
  let example: Example;

  test.beforeEach(async () => {
    worker = await TestWorker.start();
    example = await Example.start(worker.url);
  });

  test.afterEach(async () => {
    await example.stop();
    await worker.stop();
  });

  test("two users side by side each see only their own exports finish", async ({ browser }) => {
    const alice = await logIn(browser, example, "alice");
    const bob = await logIn(browser, example, "bob");

    const alices = await startExport(alice, worker);
    const bobs = [await startExport(bob, worker), await startExport(bob, worker)];
    for (const job of [bobs[0], alices, bobs[1]]) expect(await worker.finish(job)).toBe(200);

    await expectDone(alice, alices);
    for (const id of bobs) await expectDone(bob, id);
    expect(await shownExports(alice)).toEqual([alices]);
    expect((await shownExports(bob)).sort()).toEqual([...bobs].sort());
    // The finished export is announced to screen readers.
    await expect(alice.locator("#exports")).toHaveAttribute("aria-live", "polite");
  });

  test("an export that finishes while the page reloads is shown once, from Herald's replay", async ({ browser }) => {
    const page = await logIn(browser, example, "alice");
    // A first export gives Flask an event id to render the page with.
    const first = await startExport(page, worker);
    expect(await worker.finish(first)).toBe(200);
    await expectDone(page, first);
    const second = await startExport(page, worker);

    // Reload, and hold Herald's client until the export has finished: the new page's list says
    // "running", and the event was published before the page follows the topic.
    const release = await reloadHoldingTheClient(page);
    await expect(row(page, second)).toHaveAttribute("data-status", "running");
    expect(await worker.finish(second)).toBe(200);
    release();

    await expectDone(page, second);
    await expectDone(page, first);
    expect(await shownExports(page)).toEqual([second, first]);
    await expect(page.locator("#notice")).toBeHidden();
  });

  test("with no event to resume from, an export that finishes while the page reloads is refetched", async ({ browser }) => {
    // No event was ever published to bob: the page has no id to resume from, and refetches.
    const page = await logIn(browser, example, "bob");
    const id = await startExport(page, worker);
    const release = await reloadHoldingTheClient(page);
    await expect(row(page, id)).toHaveAttribute("data-status", "running");
    expect(await worker.finish(id)).toBe(200);
    release();
    await expectDone(page, id);
  });

  test("a Herald restart mid-job loses nothing: the page is told to refetch, and shows the export once", async ({ browser }) => {
    const page = await logIn(browser, example, "alice");
    const first = await startExport(page, worker);
    expect(await worker.finish(first)).toBe(200);
    await expectDone(page, first);
    const second = await startExport(page, worker);

    await example.herald.stop();
    await expect(page.locator("#live")).toHaveText("connecting to Herald…");
    // Flask's publish retries with the same idempotency key until Herald is back.
    const reported = worker.finish(second);
    await example.restartHerald();
    expect(await reported).toBe(200);

    await expectDone(page, second);
    await expectDone(page, first);
    await expect(page.locator("#live")).toHaveText("live");
    // The page resumed from the old incarnation's id: Herald said so, and the page told the user.
    await expect(page.locator("#notice")).toContainText("could not replay");
  });

  test("a logged-out page gets no private event, and no token", async ({ browser }) => {
    const alice = await logIn(browser, example, "alice");
    const page = await logIn(browser, example, "alice");
    await page.getByRole("button", { name: "Log out" }).click();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Log in");

    // The logged-out browser asks for a token, and tries the topic with none.
    expect(await page.evaluate(async () => (await fetch("/herald-token")).status)).toBe(401);
    expect(await page.evaluate(async () => (await fetch("/exports", { method: "POST" })).status)).toBe(401);
    const refused = page.evaluate(
      (url) =>
        new Promise<string[]>((resolve) => {
          const got: string[] = [];
          const source = new EventSource(url);
          source.addEventListener("export.done", (event) => got.push((event as MessageEvent).data));
          source.onerror = () => {
            if (source.readyState === EventSource.CLOSED) resolve(got);
          };
        }),
      `${example.herald.url}/events?topic=user.1`,
    );
    expect(await refused).toEqual([]);

    // alice's export, finished meanwhile, reaches her logged-in page and nothing else.
    const id = await startExport(alice, worker);
    expect(await worker.finish(id)).toBe(200);
    await expectDone(alice, id);
    await expect(page.locator("#exports")).toHaveCount(0);
  });
});

test("the example's own worker finishes an export, signed, and the page shows it live", async ({ browser }) => {
  const worker = await Listening.start(python, ["examples/flask/worker.py"], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH,
      EXAMPLE_WORKER_ADDR: "127.0.0.1:0",
      EXAMPLE_CALLBACK_SECRET: callbackSecret,
      EXAMPLE_WORK_SECONDS: "0.5",
    },
    listening: /listening on http:\/\/(\S+)/,
  });
  const example = await Example.start(worker.url);
  try {
    const page = await logIn(browser, example, "bob");
    const id = await startExport(page);
    await expect(row(page, id)).toHaveAttribute("data-status", "done");
    await expect(row(page, id).locator(".file")).toContainText(`export-${id}.csv`);
  } finally {
    await example.stop();
    await worker.stop();
  }
});
