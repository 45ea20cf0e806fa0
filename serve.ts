/**
 * wa-webhook for `deno serve`: the same service as `main.ts`, as a module whose default export
 * is `{ fetch }`. With `--parallel`, each isolate (one per core, or `DENO_JOBS`) runs its own app
 * and worker on the same Deno KV; the worker's leases keep two isolates from running one event.
 *
 * ```sh
 * DENO_JOBS=4 deno serve --parallel --host 0.0.0.0 --port 3001 --allow-net \
 *   --allow-env=<the start task's list> --allow-read=./data --allow-write=./data serve.ts
 * ```
 *
 * The address comes from `--host` and `--port`; `HOST` and `PORT` are not used here.
 *
 * @module
 */
import { startServeEntry } from "./main.ts";

export default await startServeEntry({ args: Deno.args });
