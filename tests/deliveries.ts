/**
 * Webhook payloads in the shape Meta posts, for tests: kept apart from `support.ts` so that suites
 * that need only a payload (the store contract) do not load the whole app.
 *
 * @module
 */

/**
 * A delivery with one entry and one `messages` change to the test business number, whose value
 * holds `arrays` (`contacts`, `messages`, `statuses`) after its `metadata`.
 */
export function messagesDelivery(arrays: Record<string, unknown[]>): Record<string, unknown> {
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: "102290000000001",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550001111", phone_number_id: "106540000000002" },
          ...arrays,
        },
      }],
    }],
  };
}

/** A delivery of text messages with the given wamids, one entry, one change. */
export function textsDelivery(wamids: string[]): string {
  const messages = wamids.map((id, i) => ({
    from: "5511999990000",
    id,
    timestamp: String(1767225600 + i),
    type: "text",
    text: { body: `message ${i}` },
  }));
  return JSON.stringify(messagesDelivery({
    contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
    messages,
  }));
}
