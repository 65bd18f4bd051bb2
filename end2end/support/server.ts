import path from "node:path";

import { Listening } from "./process";

export const projectRoot = path.resolve(__dirname, "../..");

/**
 * A Herald server of the test's own, from the binary that `cargo leptos end-to-end` built, so a
 * test can stop and restart it without touching the server the other tests share.
 */
export class OwnServer {
  private constructor(private server: Listening) {}

  /**
   * Starts the server on `address` (`127.0.0.1:0` picks a free port), with `env` on top of the
   * run's environment, and waits until it listens.
   */
  static async start(address = "127.0.0.1:0", env: Record<string, string> = {}): Promise<OwnServer> {
    const binary = process.env.HERALD_BIN ?? path.join(projectRoot, "target/debug/herald");
    const server = await Listening.start(binary, [], {
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
      listening: /listening on http:\/\/(\S+)/,
    });
    return new OwnServer(server);
  }

  get address(): string {
    return this.server.address;
  }

  get url(): string {
    return this.server.url;
  }

  /** Sends SIGTERM and waits for the process to exit. */
  async stop(): Promise<void> {
    await this.server.stop();
  }
}
