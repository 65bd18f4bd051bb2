import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { expect, test, type Page } from "@playwright/test";

import { freePorts } from "../support/process";

/**
 * Two Herald instances sharing one Redis, as behind a load balancer (scripts/run-cluster.sh does
 * the same by hand). The spec starts its own throwaway redis-server and two instances of the
 * binary `cargo leptos end-to-end` built, on free ports, and shares the job worker that
 * scripts/with-worker.sh started for the whole run. Every job is called back on instance A,
 * whichever instance started it: the job's state is in Redis, so B still sees it finish.
 */

const projectRoot = path.resolve(__dirname, "../..");
const herald = process.env.HERALD_BIN ?? path.join(projectRoot, "target/debug/herald");
const redisServer = process.env.REDIS_SERVER ?? "/usr/bin/redis-server";

// The worker is the run's own (scripts/with-worker.sh): these three must be what it was started
// with, which is the Makefile's development values unless the environment set its own.
const worker = {
  url: process.env.HERALD_WORKER_URL ?? "http://127.0.0.1:3002",
  token: process.env.HERALD_WORKER_TOKEN ?? "dev-only-worker-token",
  callbackSecret: process.env.HERALD_CALLBACK_SECRET ?? "dev-only-callback-secret",
};

/** A child process whose output is kept, for the readiness checks and for a failure's report. */
class Child {
  private output = "";
  private exitCode: number | string | null = null;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    private readonly process: ChildProcess,
  ) {
    for (const stream of [process.stdout, process.stderr]) {
      stream?.setEncoding("utf8").on("data", (chunk: string) => (this.output += chunk));
    }
    this.exited = new Promise((resolve) => {
      process.once("exit", (code, signal) => {
        this.exitCode = code ?? signal;
        resolve();
      });
      process.once("error", (error) => {
        this.output += `${error}\n`;
        this.exitCode = "spawn error";
        resolve();
      });
    });
  }

  /** Starts `command` with exactly `env` (plus PATH): nothing else of the run's environment. */
  static start(name: string, command: string, args: string[], env: Record<string, string>): Child {
    const child = spawn(command, args, {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    return new Child(name, child);
  }

  get log(): string {
    return this.output;
  }

  get running(): boolean {
    return this.exitCode === null;
  }

  /** Polls `ready` every 100 ms until it holds, failing at once if the process exits. */
  async waitUntil(what: string, ready: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited (${this.exitCode}) before ${what}:\n${this.log}`);
      if (await ready()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${this.name}: no ${what} within ${timeoutMs / 1000} s:\n${this.log}`);
  }

  /** SIGTERM, then SIGKILL if it has not exited after 10 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Whether a Redis answers `PING` on `port`. */
function redisAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let answer = "";
    const socket = net.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
    socket.setTimeout(1_000, () => socket.destroy());
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      answer += chunk;
      if (answer.includes("\r\n")) socket.end();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(answer.startsWith("+PONG")));
  });
}

async function answers200(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).status === 200;
  } catch {
    return false;
  }
}

/** The job rows shown, as their ids and statuses (as in jobs.spec.ts). */
async function jobsShown(page: Page): Promise<{ id: string; status: string }[]> {
  return page.locator("[data-testid=jobs] li").evaluateAll((rows) =>
    rows.map((row) => ({ id: row.getAttribute("data-job") ?? "", status: row.getAttribute("data-status") ?? "" })),
  );
}

/**
 * A first page load hydrates a debug build's wasm, which takes seconds when the machine's cores
 * are busy with other builds: each such wait gets longer than the usual 5 s.
 */
const hydrated = { timeout: 15_000 };

async function openHome(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await expect(page.getByTestId("connection-state")).toHaveText("live", hydrated);
}

/** Starts a job from the page and returns its id, once the page lists it as running. */
async function startJob(page: Page): Promise<string> {
  await page.getByTestId("start-job").click();
  await expect.poll(async () => (await jobsShown(page)).length).toBe(1);
  const [started] = await jobsShown(page);
  expect(started.status).toBe("running");
  return started.id;
}

test.describe("two instances sharing one Redis", () => {
  test.describe.configure({ timeout: 60_000 });
  let dir: string;
  let redis: Child | undefined;
  let a: Child | undefined;
  let b: Child | undefined;
  let urlA: string;
  let urlB: string;

  test.beforeAll(async () => {
    test.setTimeout(120_000);
    dir = mkdtempSync(path.join(os.tmpdir(), "herald-cluster-"));
    const [redisPort, portA, portB] = await freePorts(3);
    [urlA, urlB] = [`http://127.0.0.1:${portA}`, `http://127.0.0.1:${portB}`];

    redis = Child.start(
      "redis-server",
      redisServer,
      ["--port", `${redisPort}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
      {},
    );
    await redis.waitUntil("PONG", () => redisAnswers(redisPort));

    const shared = {
      // What cargo-leptos gives the server it runs (Cargo.toml, [package.metadata.leptos]); the
      // hashed asset names come from target/debug/hash.txt, beside the binary.
      LEPTOS_OUTPUT_NAME: "herald",
      LEPTOS_SITE_ROOT: path.join(projectRoot, "target/site"),
      LEPTOS_SITE_PKG_DIR: "pkg",
      LEPTOS_HASH_FILES: "true",
      RUST_LOG: "herald=info,tower_http=info",
      HERALD_REDIS_URL: `redis://127.0.0.1:${redisPort}/`,
      // The same on both, so that a session cookie from one is good on the other.
      HERALD_SESSION_KEY: "dev-only-session-key-that-is-long-enough",
      HERALD_PUBLISH_TOKEN: "dev-only-publish-token",
      HERALD_CALLBACK_SECRET: worker.callbackSecret,
      HERALD_WORKER_TOKEN: worker.token,
      HERALD_WORKER_URL: worker.url,
      // The worker calls back instance A, whichever instance started the job.
      HERALD_CALLBACK_URL: urlA,
    };
    a = Child.start("herald A", herald, [], { ...shared, LEPTOS_SITE_ADDR: `127.0.0.1:${portA}` });
    b = Child.start("herald B", herald, [], { ...shared, LEPTOS_SITE_ADDR: `127.0.0.1:${portB}` });
    await Promise.all([
      a.waitUntil("200 from /readyz", () => answers200(`${urlA}/readyz`)),
      b.waitUntil("200 from /readyz", () => answers200(`${urlB}/readyz`)),
    ]);
  });

  test.afterEach(async ({}, testInfo) => {
    if (testInfo.status === testInfo.expectedStatus) return;
    for (const child of [a, b, redis]) {
      if (child) await testInfo.attach(`${child.name}.log`, { body: child.log, contentType: "text/plain" });
    }
  });

  test.afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("a job started on instance B, called back on instance A, shows its completion on B once", async ({
    page,
  }) => {
    await openHome(page, urlB);
    const id = await startJob(page);

    // Jobs take 1 to 5 s in the worker (HERALD_WORKER_MIN, HERALD_WORKER_MAX).
    await expect.poll(async () => (await jobsShown(page))[0]?.status, { timeout: 10_000 }).toBe("done");
    expect(await jobsShown(page)).toEqual([{ id, status: "done" }]);
    await expect(page.locator("[data-testid=jobs] li .job-result")).toContainText('"answer":42');
    await expect(page.getByTestId("connection-state")).toHaveText("live");

    // The callback reached A (its request log line), never B: the completion crossed over Redis.
    await expect.poll(() => a!.log).toContain(`path=/callbacks/${id}`);
    expect(b!.log).not.toContain("/callbacks/");
  });

  test("a reload on instance A mid-job shows the job and then its completion", async ({ page, context }) => {
    // Every status each job row is rendered with, in order, and when (this machine's clock),
    // however briefly it was shown: a new status is a new row (the list is keyed by id and status).
    await context.addInitScript(() => {
      const seen: Record<string, { status: string; at: number }[]> = {};
      (window as unknown as { jobStatuses: typeof seen }).jobStatuses = seen;
      new MutationObserver((records) => {
        const at = Date.now();
        for (const added of records.flatMap((record) => [...record.addedNodes])) {
          if (!(added instanceof Element)) continue;
          for (const row of [added, ...added.querySelectorAll("li")]) {
            const [id, status] = [row.getAttribute("data-job"), row.getAttribute("data-status")];
            if (!id || !status || !row.closest("[data-testid=jobs]")) continue;
            const statuses = (seen[id] ??= []);
            if (statuses[statuses.length - 1]?.status !== status) statuses.push({ status, at });
          }
        }
      }).observe(document, { subtree: true, childList: true });
    });
    const statusesOnPage = (id: string) =>
      page.evaluate(
        (id) => (window as unknown as { jobStatuses: Record<string, { status: string; at: number }[]> }).jobStatuses[id],
        id,
      );

    await openHome(page, urlB);
    const clickedAt = Date.now();
    const id = await startJob(page);

    // Cookies belong to a host, not to a host and port: B's session cookie goes to A as well.
    expect((await context.cookies(urlA)).map((cookie) => cookie.name)).toContain("herald_session");
    await page.goto(urlA);
    await expect.poll(async () => (await jobsShown(page)).map((job) => job.id), hydrated).toEqual([id]);
    await expect.poll(async () => (await jobsShown(page))[0]?.status, { timeout: 10_000 }).toBe("done");
    expect(await jobsShown(page)).toEqual([{ id, status: "done" }]);
    await expect(page.getByTestId("connection-state")).toHaveText("live");

    // A lists the job once it has hydrated, about a second after the click on a debug build, and
    // the worker takes 1 to 5 s: most jobs are still running then, but not all. So "running" is
    // required when the job provably outlasted A's listing: the job started after the click and
    // finished `took` later (shown in tenths of a second), and A rendered its first row after
    // its listing was answered. Otherwise A may have shown it done straight away.
    const shown = (await statusesOnPage(id)) ?? [];
    expect(shown).not.toHaveLength(0);
    const took = page.locator("[data-testid=jobs] li .job-took");
    await expect(took).toHaveText(/^\d+\.\d s$/);
    const tookMs = Number.parseFloat((await took.textContent())!) * 1000;
    const listedAfterMs = shown[0].at - clickedAt;
    const midJob = listedAfterMs < tookMs - 100;
    test.info().annotations.push({
      type: "mid-job",
      description: `A listed the job ${listedAfterMs} ms after the click; it took ${tookMs} ms (${midJob ? "running when listed" : "may have been done"})`,
    });
    const statuses = shown.map(({ status }) => status);
    if (midJob) expect(statuses).toEqual(["running", "done"]);
    else expect([["running", "done"], ["done"]]).toContainEqual(statuses);
  });
});
