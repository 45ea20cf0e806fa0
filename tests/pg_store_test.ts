/**
 * The store contract (`tests/store_contract.ts`) run against the PostgreSQL store, each test on a
 * database of its own on a real server (`tests/pg_cluster.ts`: `TEST_DATABASE_URL`, or a throwaway
 * cluster), plus what only this store does: its migrations under an advisory lock.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connectPg } from "../src/store/pg/client.ts";
import { migrate, MIGRATIONS } from "../src/store/pg/migrations.ts";
import { openPgStore } from "../src/store/pg/open.ts";
import { storeContract } from "./store_contract.ts";
import { messagesDelivery } from "./deliveries.ts";
import { parseDelivery, type WebhookEvent } from "../src/events/events.ts";
import { createTestDatabase } from "./pg_cluster.ts";

/** Eight instances migrate an empty database within this (about a second here). */
const MIGRATE_TIMEOUT_MS = 20_000;

storeContract("PostgreSQL", async (options) => {
  const database = await createTestDatabase();
  const store = await openPgStore(database.url, { ...options, poolSize: 4 });
  return {
    store,
    close: async () => {
      await store.end();
      await database.drop();
    },
  };
});

Deno.test("migrate() run by eight instances at once on an empty database applies each migration once", async () => {
  const database = await createTestDatabase({ isEmpty: true });
  const clients = Array.from({ length: 8 }, () => connectPg(database.url, { poolSize: 2 }));
  try {
    // Without the lock they block one another creating the same tables: fail, not hang.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcomes = await Promise.race([
      Promise.all(clients.map((sql) => migrate(sql))),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("Migrations did not finish")),
          MIGRATE_TIMEOUT_MS,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    const applied = outcomes.flatMap((outcome) => outcome.applied);
    assert.deepEqual(applied, MIGRATIONS.map((migration) => migration.version), "each once");
    const last = MIGRATIONS.at(-1)!.version;
    assert.ok(outcomes.every((outcome) => outcome.version === last), "every instance sees it");
    assert.deepEqual((await migrate(clients[0]!)).applied, [], "a later start applies none");
  } finally {
    await Promise.all(clients.map((sql) => sql.end({ timeout: 1 })));
    await database.drop();
  }
});

Deno.test("migrate() refuses a schema newer than the migrations it knows", async () => {
  const database = await createTestDatabase({ isEmpty: true });
  const sql = connectPg(database.url, { poolSize: 1 });
  try {
    const newer = [...MIGRATIONS, { version: 999, name: "from a newer version", sql: "SELECT 1" }];
    assert.deepEqual((await migrate(sql, newer)).applied, newer.map((m) => m.version));
    await assert.rejects(() => migrate(sql), /version 999, newer than this version/);
  } finally {
    await sql.end();
    await database.drop();
  }
});

Deno.test("onDue() wakes another instance's store when events are recorded or replayed", async () => {
  const database = await createTestDatabase();
  const recorder = await openPgStore(database.url, { poolSize: 2 });
  const listener = await openPgStore(database.url, { poolSize: 2 });
  try {
    let woken = 0;
    let wake: () => void = () => {};
    const remove = listener.onDue!(() => {
      woken++;
      wake();
    });
    const next = (): Promise<void> => new Promise((resolve) => (wake = resolve));
    // The LISTEN starts with the first callback: a notification sent before it would be lost.
    await listener.probe(1);
    let woke = next();
    for (let attempt = 0; attempt < 50 && woken === 0; attempt++) {
      const [event] = _textEvents(attempt);
      await recorder.recordEvents([event!], { now: 1_000 });
      await Promise.race([woke, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    assert.ok(woken > 0, "woken by a recording on another instance");
    woke = next();
    const before = woken;
    const claims = await recorder.claimDue({ now: 2_000, limit: 100, leaseUntil: 3_000 });
    await recorder.settle(claims[0]!, {
      state: "dead",
      startedAt: 2_000,
      endedAt: 2_001,
      completedHandlers: [],
      error: "echo: rejected",
    });
    assert.equal(await recorder.replayDeadLetters(4_000), 1);
    await woke;
    assert.ok(woken > before, "woken by a replay");
    remove();
  } finally {
    await recorder.end();
    await listener.end();
    await database.drop();
  }
});

/** Events of one text message each, numbered from `n`, as a delivery would carry them. */
function _textEvents(n: number): WebhookEvent[] {
  return parseDelivery(messagesDelivery({
    messages: [{
      from: "5511999990000",
      id: `wamid.NOTIFY${n}`,
      timestamp: "1767225600",
      type: "text",
      text: { body: `n${n}` },
    }],
  })).events;
}
