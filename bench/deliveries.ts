/**
 * The deliveries the benchmarks send and record: text messages from one user to one business
 * number, with wamids unique to a key, so every run of a bench records new events.
 *
 * @module
 */

/** A delivery of `count` text messages whose wamids are unique to `key`. */
export function benchDelivery(key: string, count: number): unknown {
  return {
    object: "whatsapp_business_account",
    entry: [{
      id: "102290000000001",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: { display_phone_number: "15550001111", phone_number_id: "106540000000002" },
          contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
          messages: Array.from({ length: count }, (_, i) => ({
            from: "5511999990000",
            id: `wamid.BENCH${key}x${i}`,
            timestamp: "1767225600",
            type: "text",
            text: { body: "Hello, is the shop open today?" },
          })),
        },
      }],
    }],
  };
}
