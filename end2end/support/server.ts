import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { createInterface } from "node:readline";

const projectRoot = path.resolve(__dirname, "../..");

/**
 * A Herald server of the test's own, from the binary that `cargo leptos end-to-end` built, so a
 * test can stop and restart it without touching the server the other tests share.
 */
export class OwnServer {
  private constructor(
    private process: ChildProcess,
    readonly address: string,
  ) {}

  /**
   * Starts the server on `address` (`127.0.0.1:0` picks a free port), with `env` on top of the
   * run's environment, and waits until it listens.
   */
  static async start(address = "127.0.0.1:0", env: Record<string, string> = {}): Promise<OwnServer> {
    const binary = process.env.HERALD_BIN ?? path.join(projectRoot, "target/debug/herald");
    const child = spawn(binary, [], {
      cwd: projectRoot,
      env: {
        ...process.env,
        LEPTOS_SITE_ADDR: address,
        LEPTOS_SITE_ROOT: "target/site",
        // cargo-leptos builds the site with content-hashed asset names (Cargo.toml, hash-files).
        LEPTOS_HASH_FILES: "true",
        RUST_LOG: "herald=info",
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const lines = createInterface({ input: child.stderr! });
    const exited = once(child, "exit").then(([code]) => {
      throw new Error(`${binary} exited with ${code} before listening`);
    });
    const listening = (async () => {
      for await (const line of lines) {
        const match = /listening on http:\/\/(\S+)/.exec(line);
        if (match) return match[1];
      }
      throw new Error(`${binary} closed its log before listening`);
    })();
    const bound = await Promise.race([listening, exited]);
    return new OwnServer(child, bound);
  }

  get url(): string {
    return `http://${this.address}`;
  }

  /** Sends SIGTERM and waits for the process to exit. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null) return;
    const exited = once(this.process, "exit");
    this.process.kill("SIGTERM");
    await exited;
  }
}
