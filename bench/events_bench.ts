/**
 * Benchmarks of turning a verified body into events (`JSON.parse` + `parseDelivery`), against
 * `JSON.parse` alone as the baseline, for a typical 2 KB delivery and a batch of 100 events.
 * Target: under 25 µs for the 2 KB delivery. Then `parseDeliveryText` on signed deliveries built
 * to hurt (issue 13): 1.5 million zeros in `contacts` (3 MB) and 100,000 empty entries, each kept
 * whole as one event; before the limits they took 13 s and 0.4 s of parsing alone.
 * Run with `deno bench --allow-read bench/`.
 *
 * @module
 */

import { parseDelivery, parseDeliveryText } from "../src/events/events.ts";

/** Events in the batch benchmark: half messages, half statuses. */
const BATCH_EVENTS = 100;

const TYPICAL_BODY = await _typicalDeliveryBody();
const BATCH_BODY = _batchBody(BATCH_EVENTS);
const ZEROS_BODY = _asMetaSendsIt({
  object: "whatsapp_business_account",
  entry: [{
    id: "102290000000001",
    changes: [{
      field: "messages",
      value: { metadata: { phone_number_id: "106540000000002" }, contacts: [] },
    }],
  }],
}).replace(`"contacts":[]`, `"contacts":[${new Array(1_500_000).fill(0)}]`);
const EMPTY_ENTRIES_BODY = JSON.stringify({
  object: "whatsapp_business_account",
  entry: new Array(100_000).fill({}),
});

Deno.bench({
  name: `JSON.parse, ${TYPICAL_BODY.length} B delivery`,
  group: "typical delivery",
  baseline: true,
  fn: () => {
    JSON.parse(TYPICAL_BODY);
  },
});

Deno.bench({
  name: `JSON.parse + parseDelivery, ${TYPICAL_BODY.length} B delivery`,
  group: "typical delivery",
  fn: () => {
    parseDelivery(JSON.parse(TYPICAL_BODY));
  },
});

Deno.bench({
  name: `JSON.parse, ${BATCH_EVENTS}-event batch (${BATCH_BODY.length} B)`,
  group: "batch",
  baseline: true,
  fn: () => {
    JSON.parse(BATCH_BODY);
  },
});

Deno.bench({
  name: `JSON.parse + parseDelivery, ${BATCH_EVENTS}-event batch (${BATCH_BODY.length} B)`,
  group: "batch",
  fn: () => {
    parseDelivery(JSON.parse(BATCH_BODY));
  },
});

Deno.bench({
  name: `parseDeliveryText, 1.5 million zeros in contacts (${ZEROS_BODY.length} B)`,
  group: "pathological",
  fn: () => {
    parseDeliveryText(ZEROS_BODY);
  },
});

Deno.bench({
  name: `parseDeliveryText, 100,000 empty entries (${EMPTY_ENTRIES_BODY.length} B)`,
  group: "pathological",
  fn: () => {
    parseDeliveryText(EMPTY_ENTRIES_BODY);
  },
});

/**
 * The `batched_mixed` fixture without its last change, as Meta sends it (one line, `\/` and
 * `\uXXXX` escaped): 3 messages, 4 statuses and a template update over two entries, about 2 KB.
 */
async function _typicalDeliveryBody(): Promise<string> {
  const fixtureUrl = new URL("../tests/fixtures/batched_mixed.json", import.meta.url);
  const delivery = JSON.parse(await Deno.readTextFile(fixtureUrl));
  const [first, second] = delivery.entry;
  const secondWithoutLastChange = { ...second, changes: second.changes.slice(0, 1) };
  return _asMetaSendsIt({ object: delivery.object, entry: [first, secondWithoutLastChange] });
}

/** One entry with a change of `count / 2` messages (each with its contact) and `count / 2` statuses. */
function _batchBody(count: number): string {
  const half = Math.floor(count / 2);
  const users = Array.from({ length: half }, (_, i) => ({
    phone: `55119000${String(i).padStart(5, "0")}`,
    bsuid: `BR.15025763946${String(i).padStart(5, "0")}`,
  }));
  const metadata = { display_phone_number: "15550001111", phone_number_id: "106540000000002" };
  return _asMetaSendsIt({
    object: "whatsapp_business_account",
    entry: [{
      id: "102290000000001",
      changes: [
        {
          value: {
            messaging_product: "whatsapp",
            metadata,
            contacts: users.map((user, i) => ({
              profile: { name: `Cliente ${i}` },
              wa_id: user.phone,
              user_id: user.bsuid,
            })),
            messages: users.map((user, i) => ({
              from: user.phone,
              from_user_id: user.bsuid,
              id: `wamid.HBgNNTUxMTk5OTk5MDAwMBUCABIYBENCH${i}AA==`,
              timestamp: String(1767225600 + i),
              type: "text",
              text: { body: `Mensagem n\u00famero ${i}, ol\u00e1!` },
            })),
          },
          field: "messages",
        },
        {
          value: {
            messaging_product: "whatsapp",
            metadata,
            statuses: users.map((user, i) => ({
              id: `wamid.HBgNNTUxMTk5OTk5MDAwMBEGABIYBENCH${i}AA==`,
              status: "delivered",
              timestamp: String(1767225700 + i),
              recipient_id: user.phone,
              recipient_user_id: user.bsuid,
              pricing: {
                billable: true,
                pricing_model: "PMP",
                type: "regular",
                category: "utility",
              },
            })),
          },
          field: "messages",
        },
      ],
    }],
  });
}

/** Compact JSON with Meta's escaping: `/` as `\/`, non-ASCII as `\uXXXX`. */
function _asMetaSendsIt(delivery: unknown): string {
  return JSON.stringify(delivery)
    .replaceAll("/", "\\/")
    .replace(
      /[\u0080-\uffff]/g,
      (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
}
