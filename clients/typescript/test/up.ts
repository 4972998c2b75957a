// The real `deis-workflow up` (from $DEIS_WORKFLOW_BIN) on free loopback
// ports with its own data directory, as tests/support/up.rs starts it.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const STARTUP_TIMEOUT_MS = 60_000;
const SHUTDOWN_TIMEOUT_MS = 60_000;

/** A loopback port that was free a moment ago (for `--router-port`). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export class UpServer {
  private constructor(
    private readonly child: ChildProcess,
    private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
    /** The controller URL the banner printed. */
    readonly url: string,
    readonly dataDir: string,
  ) {}

  /** Starts `up` and waits for its ready banner. */
  static async start(): Promise<UpServer> {
    const bin = process.env.DEIS_WORKFLOW_BIN;
    if (!bin) {
      throw new Error("set DEIS_WORKFLOW_BIN to a deis-workflow binary (cargo build -p deis-workflow)");
    }
    const dataDir = await mkdtemp(join(tmpdir(), "deis-ts-client-"));
    const [routerPort, routerHttpsPort] = [await freePort(), await freePort()];
    // The same arguments tests/support/up.rs passes.
    const args = [
      "up",
      "--controller-addr", "127.0.0.1:0",
      "--builder-addr", "127.0.0.1:0",
      "--xds-addr", "127.0.0.1:0",
      "--metrics-addr", "127.0.0.1:0",
      "--registry-addr", "127.0.0.1:0",
      "--logger-addr", "127.0.0.1:0",
      "--forward-addr", "127.0.0.1:0",
      "--router-port", String(routerPort),
      "--router-https-port", String(routerHttpsPort),
      "--registration-mode", "enabled",
      "--data-dir", dataDir,
    ];
    const child = spawn(bin, args, {
      env: { ...process.env, RUST_LOG: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );

    let banner = "";
    let url: string | undefined;
    // Keeps reading stdout after the banner so the pipe never fills.
    const lines = createInterface({ input: child.stdout! });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ready banner within ${STARTUP_TIMEOUT_MS} ms:\n${banner}`)),
          STARTUP_TIMEOUT_MS,
        );
        child.once("error", (err) => { clearTimeout(timer); reject(err); });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`deis-workflow up exited (${code ?? signal}) before its banner:\n${banner}`));
        });
        lines.on("line", (line) => {
          if (url !== undefined && banner.includes("Ctrl-C")) return;
          banner += `${line}\n`;
          const rest = line.trim().match(/^Controller\s+(\S+)$/);
          if (rest) url = rest[1];
          if (line.includes("Ctrl-C")) {
            clearTimeout(timer);
            if (url === undefined) reject(new Error(`no controller URL in:\n${banner}`));
            else resolve();
          }
        });
      });
    } catch (err) {
      child.kill("SIGKILL");
      await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
    return new UpServer(child, exited, url!, dataDir);
  }

  /** Ctrl-C, a clean exit within a minute, and the data directory removed. */
  async interrupt(): Promise<void> {
    this.child.kill("SIGINT");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("deis-workflow did not stop on Ctrl-C")), SHUTDOWN_TIMEOUT_MS);
    });
    try {
      const { code, signal } = await Promise.race([this.exited, timeout]);
      if (code !== 0) {
        throw new Error(`deis-workflow exited with ${code ?? signal}`);
      }
    } catch (err) {
      this.child.kill("SIGKILL");
      throw err;
    } finally {
      clearTimeout(timer);
      await rm(this.dataDir, { recursive: true, force: true });
    }
  }
}
