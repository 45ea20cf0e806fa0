/**
 * `destinations/pauses.ts` over a real Deno KV store: a pause made by one process is seen by
 * another (its own `Pauses` over the same store) once its cached read is `refreshMs` old, at once
 * by the process that made it; a destination declared paused stays paused.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseDestinations } from "../src/destinations/declarations.ts";
import { createPauses } from "../src/destinations/pauses.ts";
import { ManualClock } from "../src/ops/clock.ts";
import { kvStore, openTempKv } from "./support.ts";

const SECRET = `whsec_${btoa("0123456789abcdef0123456789abcdef")}`;
const DESTINATIONS = parseDestinations(
  JSON.stringify([
    { name: "crm", url: "https://crm.example/hooks", secrets: [SECRET] },
    { name: "held", url: "https://held.example/hooks", secrets: [SECRET], paused: true },
  ]),
  "DESTINATIONS",
);

Deno.test("a pause made by one process reaches another within refreshMs, and at once its own", async () => {
  await using temp = await openTempKv();
  const store = kvStore(temp.kv);
  const clock = new ManualClock();
  const options = { destinations: DESTINATIONS, store, clock, refreshMs: 5_000 };
  const here = createPauses(options);
  const there = createPauses(options);
  assert.equal(await there.of("crm"), undefined); // read now, cached for refreshMs

  await here.pause("crm", "paused by an operator");
  assert.deepEqual(await here.of("crm"), {
    by: "run_time",
    reason: "paused by an operator",
    since: clock.now(),
  });
  assert.equal(await there.of("crm"), undefined, "still its cached read");
  await clock.advance(5_000);
  assert.equal((await there.of("crm"))?.reason, "paused by an operator");

  assert.equal(await there.resume("crm"), "resumed");
  assert.equal(await there.of("crm"), undefined);
  assert.equal(await there.resume("crm"), "not_paused");
  await clock.advance(5_000);
  assert.equal(await here.of("crm"), undefined);
});

Deno.test("a destination declared paused is paused, and resume leaves it so", async () => {
  await using temp = await openTempKv();
  const pauses = createPauses({
    destinations: DESTINATIONS,
    store: kvStore(temp.kv),
    clock: new ManualClock(),
  });
  assert.deepEqual(await pauses.of("held"), { by: "declared", reason: "declared paused" });
  assert.equal(await pauses.resume("held"), "declared");
  assert.deepEqual(await pauses.of("held"), { by: "declared", reason: "declared paused" });
});
