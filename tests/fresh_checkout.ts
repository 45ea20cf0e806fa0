/**
 * A copy of the files the tasks run, in a temp directory and without `.env`: what a fresh clone
 * has, whatever the working copy holds. For tests of `deno task dev` and `deno task simulate`.
 *
 * @module
 */
import { ROOT } from "./service_process.ts";

/** What a task needs: its configuration, the entry points and the sources they import. */
const _CHECKOUT_FILES = ["deno.json", "deno.lock", ".env.example", "main.ts", "serve.ts"];
const _CHECKOUT_DIRECTORIES = ["src", "tools"];

/** A temp copy of the checkout, removed on dispose. */
export interface FreshCheckout extends AsyncDisposable {
  /** Its directory, to run `deno task` in. */
  path: string;
}

/** Copies the checkout's task files into a new temp directory. */
export async function freshCheckout(): Promise<FreshCheckout> {
  const path = await Deno.makeTempDir({ prefix: "wa-webhook-checkout-" });
  for (const file of _CHECKOUT_FILES) {
    await Deno.copyFile(new URL(file, ROOT), `${path}/${file}`);
  }
  for (const directory of _CHECKOUT_DIRECTORIES) {
    await _copyDirectory(new URL(`${directory}/`, ROOT), `${path}/${directory}`);
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

async function _copyDirectory(from: URL, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) {
      await _copyDirectory(new URL(`${entry.name}/`, from), `${to}/${entry.name}`);
    } else if (entry.isFile) await Deno.copyFile(new URL(entry.name, from), `${to}/${entry.name}`);
  }
}
