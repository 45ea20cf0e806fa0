/**
 * Every fixture posted signed, byte for byte, through the real server: the events recorded in
 * Deno KV are exactly the expected ones, and a delivery's schema drift gets one warning line.
 */
import assert from "node:assert/strict";
import type { KvEventRecord } from "../src/store/kv/keys.ts";
import { FIXTURES, readExpectedParse, readFixtureBytes } from "./fixtures/catalog.ts";
import { postDelivery, startTestServer } from "./support.ts";

Deno.test("every fixture posted through the server records exactly its expected events", async (t) => {
  for (const fixture of FIXTURES) {
    await t.step(`${fixture.name}: ${fixture.description}`, async () => {
      await using server = await startTestServer({ startWorker: false });
      const bytes = new Uint8Array(await readFixtureBytes(fixture));
      const response = await postDelivery(server.origin, bytes);
      assert.equal(response.status, 200, "a verified delivery is never refused for its shape");
      await response.body?.cancel();

      const expected = await readExpectedParse(fixture);
      const uniqueIds = [...new Set(expected.events.map((e) => e.id))];
      const recorded: KvEventRecord[] = [];
      for await (const entry of server.kv.list<KvEventRecord>({ prefix: ["events"] })) {
        recorded.push(entry.value);
      }
      assert.equal(recorded.length, uniqueIds.length);
      for (const event of expected.events) {
        const stored = await server.store.getEvent(event.id);
        assert.ok(stored, `event ${event.id} recorded`);
        assert.deepEqual(stored.event, event);
      }
      const driftLines = server.logs.lines.filter((line) => line.msg === "schema drift");
      assert.deepEqual(
        driftLines.map((line) => line.samples),
        expected.drift.length === 0 ? [] : [expected.drift],
      );
    });
  }
});
