/**
 * Where the service's Deno KV lives: a local file (the default), memory, a KV Connect URL (a
 * self-hosted `denokv` server or a Deno Deploy database, shared by several instances), or, on
 * Deno Deploy with `KV_PATH` unset, the database assigned to the app (`Deno.openKv()` without a
 * path).
 *
 * When opening fails, {@linkcode kvOpenFailureReason} says in one line what to change.
 *
 * @module
 */
import { DEFAULTS } from "../../config.ts";

/** The kinds of {@linkcode KvLocation}. */
export type KvLocationKind = "file" | "memory" | "kv-connect" | "deploy";

/** What `main.ts` passes to `Deno.openKv`, and what to say about it in logs. */
export interface KvLocation {
  kind: KvLocationKind;
  /** The argument of `Deno.openKv`; `undefined` opens the default database (Deploy: the app's). */
  path: string | undefined;
  /** Something an operator should fix, for one warning line at start. */
  warning?: string;
}

/** Options for {@linkcode selectKvLocation}. */
export interface KvLocationOptions {
  /** Whether `KV_PATH` was set, rather than defaulted. */
  isKvPathSet: boolean;
  /** Whether the service runs on Deno Deploy (see `deno_deploy.ts`). */
  isDeploy: boolean;
}

/**
 * Chooses the database: on Deno Deploy an unset `KV_PATH` means the app's own database (the local
 * default path would be a file on a disk that does not outlive the isolate); everywhere else,
 * `kvPath` as configured.
 *
 * @param kvPath the configured `KV_PATH`, with its default applied
 */
export function selectKvLocation(kvPath: string, options: KvLocationOptions): KvLocation {
  if (options.isDeploy && !options.isKvPathSet) return { kind: "deploy", path: undefined };
  if (kvPath === ":memory:") return { kind: "memory", path: kvPath };
  if (isKvConnectUrl(kvPath)) return { kind: "kv-connect", path: kvPath };
  if (options.isDeploy) {
    return {
      kind: "file",
      path: kvPath,
      warning:
        "KV_PATH is a local file on Deno Deploy, whose disk does not outlive the isolate: unset it to use the app's database",
    };
  }
  return { kind: "file", path: kvPath };
}

/**
 * The checks one atomic may hold at `location`: a local SQLite file or memory allows 100, a KV
 * Connect server (self-hosted `denokv`) and Deno Deploy's database 10. Claims and settles of
 * delivery jobs check one entry each, so this is how many share a commit.
 */
export function checksPerAtomicAt(location: KvLocation): number {
  return location.kind === "file" || location.kind === "memory"
    ? LOCAL_CHECKS_PER_ATOMIC
    : KV_CONNECT_CHECKS_PER_ATOMIC;
}

/** Checks per atomic a local Deno KV (SQLite) allows. */
export const LOCAL_CHECKS_PER_ATOMIC = 100;

/** Checks per atomic KV Connect allows (a self-hosted `denokv` server): the safe default. */
export const KV_CONNECT_CHECKS_PER_ATOMIC = 10;

/** Whether `path` is a KV Connect URL (`http://` or `https://`) rather than a file. */
export function isKvConnectUrl(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/**
 * The location for a log line: a URL without credentials, query or fragment (the access token is
 * never part of it: the runtime reads it from `DENO_KV_ACCESS_TOKEN`).
 */
export function describeKvLocation(location: KvLocation): string {
  if (location.kind === "deploy") return "the Deno Deploy app's database";
  if (location.kind !== "kv-connect" || location.path === undefined) return location.path ?? "";
  try {
    const url = new URL(location.path);
    return `${url.origin}${url.pathname}`;
  } catch {
    return "a KV Connect URL that does not parse";
  }
}

/** What `main.ts` found out about a location that Deno KV could not be opened at. */
export interface KvOpenFailure {
  /** What `Deno.openKv` (or creating the file's directory) threw. */
  error: unknown;
  /** Whether the location is an existing directory, or a path ending in a separator. */
  isDirectory: boolean;
}

/**
 * Why Deno KV could not be opened at `location`, as one line that names `KV_PATH` and says what to
 * change: a directory instead of a file, or a file outside what the process may read and write
 * (the tasks and the compiled binary allow `./data` only, and Deno's own advice to "run again with
 * the --allow-write flag" is not something a task user can do). Other errors keep their message.
 */
export function kvOpenFailureReason(location: KvLocation, failure: KvOpenFailure): string {
  const { error, isDirectory } = failure;
  if (location.kind === "file" && location.path !== undefined) {
    const path = location.path;
    // `./data` itself, before its first use creates it, is meant as the directory too.
    if (isDirectory || _normalized(path) === _normalized(_directoryOf(DEFAULTS.kvPath))) {
      const file = `${path.replace(/[\\/]+$/, "")}/${_fileName(DEFAULTS.kvPath)}`;
      return `KV_PATH "${path}" is a directory: set it to a file inside it, such as "${file}"`;
    }
    if (error instanceof Deno.errors.NotCapable) {
      return `KV_PATH "${path}" is outside the directories this process may write (the tasks and the compiled binary allow "${
        _directoryOf(DEFAULTS.kvPath)
      }" only): set KV_PATH to a file in it, such as "${DEFAULTS.kvPath}"`;
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return `Cannot open Deno KV at ${describeKvLocation(location)}: ${message}`;
}

/** A relative path without its leading `./` and trailing separators. */
function _normalized(path: string): string {
  return path.replace(/^(\.[\\/])+/, "").replace(/[\\/]+$/, "");
}

function _fileName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function _directoryOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}
