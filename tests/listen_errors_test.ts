/**
 * Tests for `listenFailureReason()` and `isListenError()`: the one line `main.ts` logs when the port
 * cannot be bound (the subprocess tests in `startup_test.ts` cover the real errors end to end).
 *
 * @module
 */
import assert from "node:assert/strict";
import { isListenError, listenFailureReason } from "../src/http/listen_errors.ts";

const ADDRESS = { host: "127.0.0.1", port: "3001" };

Deno.test("listenFailureReason() names the setting to change for each bind failure", () => {
  const cases: [Error, RegExp][] = [
    [new Deno.errors.AddrInUse("Address already in use"), /^PORT "3001" is in use .*free port$/],
    [new Deno.errors.AddrNotAvailable("Cannot assign"), /^HOST "127\.0\.0\.1" is not an address/],
    [
      new Error("failed to lookup address information: Name or service not known"),
      /^HOST "127\.0\.0\.1" does not resolve \(failed to lookup/,
    ],
    [new Deno.errors.PermissionDenied("Permission denied"), /^PORT "3001" needs privileges/],
    [new Error("something else"), /^Cannot listen on "127\.0\.0\.1" port "3001": something else/],
  ];
  for (const [error, reason] of cases) {
    assert.match(listenFailureReason(error, ADDRESS), reason);
  }
  assert.match(
    listenFailureReason(new Deno.errors.AddrInUse("x"), { host: undefined, port: undefined }),
    /^PORT is in use/,
    "an address not configured is not quoted",
  );
});

Deno.test("isListenError() tells bind failures from any other rejection", () => {
  assert.ok(isListenError(new Deno.errors.AddrInUse("x")));
  assert.ok(isListenError(new Deno.errors.AddrNotAvailable("x")));
  assert.ok(isListenError(new Error("failed to lookup address information: x")));
  assert.ok(!isListenError(new Error("boom")));
  assert.ok(!isListenError("failed to lookup address information"));
});
