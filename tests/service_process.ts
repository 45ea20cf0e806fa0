/**
 * The service as a real subprocess, started with the start task's exact flags (what
 * `deno task start` and the compiled binary run), for shutdown, crash and multi-process tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TEST_SECRET, TEST_VERIFY_TOKEN } from "./support.ts";

/** A service that has not logged "listening" by then is killed and the test fails. */
const START_TIMEOUT_MS = 15_000;

/** The project root. */
export const ROOT = new URL("..", import.meta.url);

/** How deep one task may call another (`start` → `run` is one level) before the test gives up. */
const _MAX_TASK_DEPTH = 4;

/**
 * The command of task `name` from deno.json, with each `deno task <other> args` it calls written
 * out as `<other's command> args`, the way `deno task` appends arguments: `start` is
 * `deno run --v8-flags=… --allow-net … main.ts`.
 */
export async function taskCommand(name: string): Promise<string> {
  const { tasks } = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const expand = (command: string, depth: number): string =>
    command.replace(/deno task ([\w-]+)/g, (_, other: string) => {
      assert.ok(depth < _MAX_TASK_DEPTH, `Task "${name}" calls tasks more than ${depth} deep`);
      assert.equal(typeof tasks[other], "string", `Task "${other}" is not in deno.json`);
      return expand(tasks[other], depth + 1);
    });
  assert.equal(typeof tasks[name], "string", `Task "${name}" is not in deno.json`);
  return expand(tasks[name], 0);
}

/** The start task's arguments after `deno`, e.g. `["run", "--allow-net", …, "main.ts"]`. */
export async function startTaskArgs(): Promise<string[]> {
  const [program, ...args] = (await taskCommand("start")).split(/\s+/);
  assert.equal(program, "deno");
  return args;
}

/** The start task's arguments with its entry point replaced by `entry` (relative to the root). */
export async function startTaskArgsFor(entry: string, extra: string[] = []): Promise<string[]> {
  const args = await startTaskArgs();
  assert.equal(args.at(-1), "main.ts");
  return [...args.slice(0, -1), entry, ...extra];
}

/** Options for {@linkcode serveArgs}. */
export interface ServeArgsOptions {
  /** The module `deno serve` runs, relative to the root. */
  entry: string;
  /** The port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** Adds `--parallel` (isolates from `DENO_JOBS`). */
  isParallel?: boolean;
}

/** `deno serve` arguments on 127.0.0.1 with the start task's permission flags. */
export async function serveArgs({ entry, port, isParallel }: ServeArgsOptions): Promise<string[]> {
  const permissions = (await startTaskArgs()).filter((arg) => arg.startsWith("--allow-"));
  return [
    "serve",
    ...(isParallel ? ["--parallel"] : []),
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    ...permissions,
    entry,
  ];
}

/** Options for {@linkcode startService}. */
export interface StartServiceOptions {
  /** Where to run it; the project root by default (a fresh checkout's copy, say). */
  cwd?: string | URL;
  /** A command to run it through, e.g. `["prlimit", "--nofile=256:256"]`. */
  wrapper?: string[];
}

/** A service subprocess that is listening. */
export interface RunningService extends AsyncDisposable {
  process: Deno.ChildProcess;
  origin: string;
  /** Every line written so far, stdout and stderr. */
  output: string[];
  /** Sends a signal and waits for the exit code. */
  stop(signal: Deno.Signal): Promise<{ code: number; ms: number }>;
}

/**
 * Starts the service with `args` (default: the start task's) and waits until it listens; see
 * {@linkcode StartServiceOptions}.
 */
export async function startService(
  env: Record<string, string>,
  args?: string[],
  { cwd = ROOT, wrapper = [] }: StartServiceOptions = {},
): Promise<RunningService> {
  const [program, ...programArgs] = [...wrapper, Deno.execPath()];
  const process = new Deno.Command(program!, {
    args: [...programArgs, ...(args ?? await startTaskArgs())],
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  let announce: (port: number) => void = () => {};
  const listening = new Promise<number>((resolve) => (announce = resolve));
  const collect = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>): Promise<void> => {
    const lines = stream.pipeThrough(new TextDecoderStream()).pipeThrough(_splitLines());
    for await (const line of lines) {
      output.push(line);
      if (line.includes('"msg":"listening"')) announce(JSON.parse(withoutIsolatePrefix(line)).port);
    }
  };
  const collecting = Promise.all([collect(process.stdout), collect(process.stderr)]);
  const status = process.status;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    listening,
    status.then((s) => {
      throw new Error(`service exited with ${s.code} before listening:\n${output.join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        process.kill("SIGKILL");
        reject(new Error(`service did not listen within ${START_TIMEOUT_MS} ms`));
      }, START_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
  let exit: Promise<{ code: number }> | undefined;
  const stop = async (signal: Deno.Signal): Promise<{ code: number; ms: number }> => {
    const started = performance.now();
    try {
      process.kill(signal);
    } catch { /* already gone */ }
    exit ??= status;
    const { code } = await exit;
    await collecting;
    return { code, ms: performance.now() - started };
  };
  return {
    process,
    origin: `http://127.0.0.1:${port}`,
    output,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
    },
  };
}

/**
 * `args` with `names` added to its `--allow-env` list where they are missing: for variables the
 * runtime reads (`RUNTIME_ENV_NAMES`) until the tasks list them. Returns `args` unchanged once
 * they do.
 */
export function withEnvAllowed(args: string[], names: readonly string[]): string[] {
  return args.map((arg) => {
    if (!arg.startsWith("--allow-env=")) return arg;
    const listed = arg.slice("--allow-env=".length).split(",");
    return `--allow-env=${[...listed, ...names.filter((n) => !listed.includes(n))].join(",")}`;
  });
}

/** Runs the start task's command (or `args`) with `env` until it exits. */
export async function runToExit(
  env: Record<string, string>,
  args?: string[],
): Promise<{ code: number; text: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: args ?? await startTaskArgs(),
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, text: decoder.decode(stdout) + decoder.decode(stderr) };
}

/** Runs `run` with a fresh KV path inside `./data`, the only directory the start task may write. */
export async function withDataDir<T>(run: (kvPath: string) => Promise<T>): Promise<T> {
  const dir = `data/test-${crypto.randomUUID()}`;
  try {
    return await run(`./${dir}/wa-webhook.kv`);
  } finally {
    await Deno.remove(new URL(dir, ROOT), { recursive: true }).catch(() => {});
  }
}

/** The environment of a test service on 127.0.0.1 with an OS-chosen port. */
export function serviceEnv(
  kvPath: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    APP_SECRET: TEST_SECRET,
    VERIFY_TOKEN: TEST_VERIFY_TOKEN,
    PORT: "0",
    HOST: "127.0.0.1",
    KV_PATH: kvPath,
    LOG_LEVEL: "info",
    ...extra,
  };
}

/** `deno serve --parallel` prefixes each line with its isolate: `[serve-worker-1 ] {…}`. */
const _ISOLATE_PREFIX = /^\[serve-worker-(\d+)\s*\]\s?/;

/** A log line without the `[serve-worker-N ]` prefix of `deno serve --parallel`. */
export function withoutIsolatePrefix(line: string): string {
  return line.replace(_ISOLATE_PREFIX, "");
}

/** The isolate number of a `deno serve --parallel` line, `undefined` for other lines. */
export function isolateOf(line: string): number | undefined {
  const match = _ISOLATE_PREFIX.exec(line);
  return match ? Number(match[1]) : undefined;
}

function _splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const part of parts) if (part.trim()) controller.enqueue(part);
    },
    flush(controller) {
      if (rest.trim()) controller.enqueue(rest);
    },
  });
}
