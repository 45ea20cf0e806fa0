/**
 * The deliveries the benchmarks send and record: text messages from one user to one business
 * number, with wamids unique to a key, so every run of a bench records new events.
 *
 * @module
 */
import { messagesDelivery } from "../tests/deliveries.ts";

/** A delivery of `count` text messages whose wamids are unique to `key`. */
export function benchDelivery(key: string, count: number): unknown {
  return messagesDelivery({
    contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
    messages: Array.from({ length: count }, (_, i) => ({
      from: "5511999990000",
      id: `wamid.BENCH${key}x${i}`,
      timestamp: "1767225600",
      type: "text",
      text: { body: "Hello, is the shop open today?" },
    })),
  });
}
