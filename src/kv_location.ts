/**
 * Where the service's Deno KV lives: a local file (the default), memory, a KV Connect URL (a
 * self-hosted `denokv` server or a Deno Deploy database, shared by several instances), or, on
 * Deno Deploy with `KV_PATH` unset, the database assigned to the app (`Deno.openKv()` without a
 * path).
 *
 * @module
 */

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
