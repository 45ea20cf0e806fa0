/**
 * Tests for the event id builders: stable, prefixed by kind, short enough for a Deno KV key, and
 * blind to key order.
 *
 * @module
 */

import { deepStrictEqual, equal, notEqual, ok } from "node:assert/strict";
import {
  canonicalJson,
  changeEventId,
  messageEventId,
  statusEventId,
  unknownEventId,
} from "../src/events/event_ids.ts";

Deno.test("messageEventId() is the wamid behind the kind", () => {
  equal(messageEventId("wamid.HBgAAA=="), "message:wamid.HBgAAA==");
});

Deno.test("statusEventId() tells apart the statuses of one message and their repeats", () => {
  const ids = [
    statusEventId("wamid.A", "sent", 1767225700),
    statusEventId("wamid.A", "delivered", 1767225700),
    statusEventId("wamid.A", "delivered", 1767225705),
  ];
  deepStrictEqual(ids, [
    "status:wamid.A:sent:1767225700",
    "status:wamid.A:delivered:1767225700",
    "status:wamid.A:delivered:1767225705",
  ]);
});

Deno.test("changeEventId() ignores key order and depends on the WABA, the field and the value", () => {
  const value = {
    event: "APPROVED",
    message_template_id: 1,
    nested: { b: 1, a: [2, { d: 3, c: 4 }] },
  };
  const reordered = {
    nested: { a: [2, { c: 4, d: 3 }], b: 1 },
    message_template_id: 1,
    event: "APPROVED",
  };
  const entryTime = 1767225821;
  const field = "message_template_status_update";
  const id = changeEventId("102290000000001", field, { entryTime, value });
  ok(/^change:message_template_status_update:[0-9a-f]{32}$/.test(id), id);
  equal(changeEventId("102290000000001", field, { entryTime, value: reordered }), id);
  notEqual(changeEventId("102290000000002", field, { entryTime, value }), id);
  notEqual(changeEventId("102290000000001", "template_category_update", { entryTime, value }), id);
  notEqual(
    changeEventId("102290000000001", field, { entryTime, value: { ...value, event: "PAUSED" } }),
    id,
  );
});

Deno.test("changeEventId() differs for the same update at two entry times and is stable for a retry", () => {
  const field = "message_template_status_update";
  const approved = { event: "APPROVED", message_template_id: 1 };
  const first = changeEventId("102290000000001", field, { entryTime: 1767225821, value: approved });
  // A retry of the same delivery: the same entry.time, the value parsed again from the body.
  const retry = changeEventId("102290000000001", field, {
    entryTime: 1767225821,
    value: { message_template_id: 1, event: "APPROVED" },
  });
  // The template approved again after a pause: the same value, a later entry.time.
  const again = changeEventId("102290000000001", field, { entryTime: 1767229421, value: approved });
  equal(retry, first);
  notEqual(again, first);
  // entry.time is hashed as sent: a string of digits is not the number, a missing one is null.
  notEqual(
    changeEventId("102290000000001", field, { entryTime: "1767225821", value: approved }),
    first,
  );
  equal(
    changeEventId("102290000000001", field, { entryTime: undefined, value: approved }),
    changeEventId("102290000000001", field, { entryTime: null, value: approved }),
  );
});

Deno.test("changeEventId() matches a hash computed outside this project's code", () => {
  // Python: sha256(json.dumps(v, sort_keys=True, separators=(",",":"), ensure_ascii=False)
  // .encode()).hexdigest()[:32], v = ["102290000000001","account_update",<time>,{"event":"X"}]
  const cases: [unknown, string][] = [
    [1767225804, "177f0f01baca8b2514a23c559a484355"],
    ["1767225804", "d27427a9f58de5eea2b060cae5537dc3"],
    [undefined, "12addb14809c9080428d8ac8bf065c63"], // None in Python
  ];
  for (const [entryTime, hash] of cases) {
    equal(
      changeEventId("102290000000001", "account_update", { entryTime, value: { event: "X" } }),
      `change:account_update:${hash}`,
    );
  }
});

Deno.test("unknownEventId() depends on the WABA when known", () => {
  notEqual(unknownEventId({ a: 1 }, "102290000000001"), unknownEventId({ a: 1 }, undefined));
  equal(unknownEventId(undefined, undefined), unknownEventId(null, undefined));
});

Deno.test("event ids hash a wamid too long for a Deno KV key", () => {
  const id = messageEventId(`wamid.${"A".repeat(5000)}`);
  ok(/^message:sha256-[0-9a-f]{32}$/.test(id), id);
});

Deno.test("canonicalJson() sorts keys, drops what JSON drops and never throws", () => {
  const cyclic: Record<string, unknown> = { b: 1 };
  cyclic.self = cyclic;
  const cases: [unknown, string][] = [
    [{ b: 1, a: "é/😀" }, `{"a":"é/😀","b":1}`],
    [[undefined, () => 1, Number.NaN, 10n], `[null,null,null,"10"]`],
    [{ skipped: undefined, kept: null }, `{"kept":null}`],
    [cyclic, `{"b":1,"self":null}`],
    [undefined, "null"],
  ];
  for (const [value, expected] of cases) equal(canonicalJson(value), expected);
});

Deno.test("canonicalJson() writes a value nested 100,000 deep without overflowing the stack", () => {
  let deep: unknown = { b: 1, a: [] };
  for (let i = 0; i < 100_000; i++) deep = i % 2 === 0 ? [deep, 2] : { z: deep, y: 3 };
  const text = canonicalJson(deep);
  // 50,000 objects `{"y":3,"z":…}` and 50,000 arrays `[…,2]` around the innermost object.
  equal(text, `{"y":3,"z":[`.repeat(50_000) + `{"a":[],"b":1}` + ",2]}".repeat(50_000));
});

Deno.test("canonicalJson() writes shared (not cyclic) values each time and cycles as null", () => {
  const shared = { k: [1, "x"] };
  const cyclic: unknown[] = [1];
  cyclic.push([cyclic]);
  equal(canonicalJson([shared, { s: shared }]), `[{"k":[1,"x"]},{"s":{"k":[1,"x"]}}]`);
  equal(canonicalJson(cyclic), "[1,[null]]");
});
