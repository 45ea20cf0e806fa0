/**
 * Deno Deploy: how the service knows it runs there. What differs there is wired in `main.ts`:
 * the same entry point runs without flags (every permission), `Deno.openKv()` without a path
 * opens the app's database (`store/kv/location.ts`), the platform picks the port, and the isolate
 * sleeps between requests, so a `Deno.cron` job sweeps due events (`dispatch/sweep.ts`).
 *
 * @module
 */

/**
 * Set by Deno Deploy (the current platform and Classic) in every context. Reading it needs env
 * permission for this name: the start task does not grant it, so a local run reads "not Deploy".
 */
export const DEPLOYMENT_ID_VARIABLE = "DENO_DEPLOYMENT_ID";

/** Reads one environment variable: `undefined` when it is unset or may not be read. */
export type EnvReader = (name: string) => string | undefined;

/** Whether the service runs on Deno Deploy: {@linkcode DEPLOYMENT_ID_VARIABLE} is set. */
export function isDenoDeploy(readEnv: EnvReader): boolean {
  return (readEnv(DEPLOYMENT_ID_VARIABLE) ?? "").trim() !== "";
}
