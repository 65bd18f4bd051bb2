import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { createInterface } from "node:readline";

/**
 * A process that a test starts and stops: a Herald server, the Flask example, its worker. It
 * counts as started once its stderr says where it listens.
 */
export class Listening {
  private constructor(
    readonly process: ChildProcess,
    /** `host:port`, as the process logged it. */
    readonly address: string,
  ) {}

  /**
   * Runs `command` with `env` and resolves once a line of its stderr matches `listening`, whose
   * first group is the `host:port` it listens on. Rejects if it exits first.
   */
  static async start(
    command: string,
    args: string[],
    options: { cwd: string; env: NodeJS.ProcessEnv; listening: RegExp },
  ): Promise<Listening> {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "ignore", "pipe"] });
    const lines = createInterface({ input: child.stderr! });
    const exited = once(child, "exit").then(([code]) => {
      throw new Error(`${command} exited with ${code} before listening`);
    });
    const listening = (async () => {
      for await (const line of lines) {
        const match = options.listening.exec(line);
        if (match) {
          // Keep reading, so that a full pipe never blocks the process.
          lines.on("line", () => {});
          return match[1];
        }
      }
      throw new Error(`${command} closed its log before listening`);
    })();
    return new Listening(child, await Promise.race([listening, exited]));
  }

  get url(): string {
    return `http://${this.address}`;
  }

  /** Sends SIGTERM and waits for the process to exit. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = once(this.process, "exit");
    this.process.kill("SIGTERM");
    await exited;
  }
}

/** `count` distinct free loopback ports (the kernel's ephemeral range: never 3000-3002). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = net.createServer();
      return new Promise<net.Server>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      });
    }),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}
