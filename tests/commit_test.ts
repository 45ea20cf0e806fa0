import assert from "node:assert/strict";
import { isDatabaseLocked, retryWhileLocked } from "../src/store/kv/commit.ts";

const locked = (): Error => new TypeError("database is locked");

Deno.test("retryWhileLocked() tries again while the database is locked, then succeeds", async () => {
  let calls = 0;
  const value = await retryWhileLocked(() => {
    calls++;
    return calls < 3 ? Promise.reject(locked()) : Promise.resolve("opened");
  });
  assert.equal(value, "opened");
  assert.equal(calls, 3);
});

Deno.test("retryWhileLocked() passes any other error on at once", async () => {
  let calls = 0;
  await assert.rejects(
    retryWhileLocked(() => {
      calls++;
      return Promise.reject(new Error("disk full"));
    }),
    /disk full/,
  );
  assert.equal(calls, 1);
});

Deno.test("retryWhileLocked() gives up after a bounded number of locked attempts", async () => {
  let calls = 0;
  const started = performance.now();
  await assert.rejects(
    retryWhileLocked(() => {
      calls++;
      return Promise.reject(locked());
    }),
    (error) => isDatabaseLocked(error),
  );
  assert.equal(calls, 10);
  assert.ok(performance.now() - started < 2_000, "the waits are bounded");
});
