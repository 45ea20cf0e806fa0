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
  const id = changeEventId("102290000000001", "message_template_status_update", value);
  ok(/^change:message_template_status_update:[0-9a-f]{32}$/.test(id), id);
  equal(changeEventId("102290000000001", "message_template_status_update", reordered), id);
  notEqual(changeEventId("102290000000002", "message_template_status_update", value), id);
  notEqual(changeEventId("102290000000001", "template_category_update", value), id);
  notEqual(
    changeEventId("102290000000001", "message_template_status_update", {
      ...value,
      event: "PAUSED",
    }),
    id,
  );
});

Deno.test("changeEventId() matches a hash computed outside this project's code", () => {
  // Python: sha256(json.dumps(["102290000000001","account_update",{"event":"X"}], sort_keys=True,
  // separators=(",",":"), ensure_ascii=False).encode()).hexdigest()[:32]
  equal(
    changeEventId("102290000000001", "account_update", { event: "X" }),
    "change:account_update:4bf29aa3f28b36a5ccfadd5217eb7173",
  );
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
