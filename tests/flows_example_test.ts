/**
 * `examples/flow_booking.ts` end to end, started with `deno task run` as its doc says: Meta's side
 * (the Node client) opens the flow, picks a slot, confirms it and tries again with the used token;
 * then the completed flow's `nfm_reply` arrives on the webhook with the same flow token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { signBody } from "../src/webhook/signature.ts";
import { messagesDelivery } from "./deliveries.ts";
import { flowsKeyPair, metaExchange } from "./flows_support.ts";
import { serviceEnv, startService, withDataDir } from "./service_process.ts";
import { TEST_SECRET, waitFor } from "./support.ts";

const TOKEN = "booking-5511999990000-1";

Deno.test("examples/flow_booking.ts books a slot in two screens and meets its nfm_reply by flow token", async () => {
  await withDataDir(async (kvPath) => {
    const env = serviceEnv(kvPath, { FLOWS_PRIVATE_KEY: flowsKeyPair().privateKeyPem });
    // Not `await using`: its SIGKILL would end `deno task` and orphan the entry it started.
    const service = await startService(env, ["task", "run", "examples/flow_booking.ts"]);
    try {
      const url = `${service.origin}/flows`;
      const init = await metaExchange({
        url,
        request: { version: "3.0", action: "INIT", flow_token: TOKEN },
      });
      assert.deepEqual(init.answer, {
        screen: "APPOINTMENT",
        data: { slots: ["09:00", "10:30", "14:00", "16:30"] },
      });
      const pick = {
        version: "3.0",
        action: "data_exchange",
        screen: "APPOINTMENT",
        flow_token: TOKEN,
        data: { slot: "10:30" },
      };
      assert.deepEqual((await metaExchange({ url, request: pick })).answer, {
        screen: "CONFIRM",
        data: { slot: "10:30" },
      });
      const confirm = { ...pick, screen: "CONFIRM" };
      assert.deepEqual((await metaExchange({ url, request: confirm })).answer, {
        screen: "SUCCESS",
        data: { extension_message_response: { params: { flow_token: TOKEN, slot: "10:30" } } },
      });
      const again = await metaExchange({ url, request: confirm });
      assert.equal(again.status, 427);
      assert.deepEqual(JSON.parse(again.text), { error_msg: "This booking is already made" });
      const back = await metaExchange({
        url,
        request: { version: "3.0", action: "BACK", screen: "APPOINTMENT", flow_token: "other" },
      });
      assert.deepEqual(back.answer, {
        screen: "APPOINTMENT",
        data: { slots: ["09:00", "14:00", "16:30"] },
      });

      // What Meta delivers to the webhook once the flow closes.
      const body = new TextEncoder().encode(JSON.stringify(messagesDelivery({
        messages: [{
          from: "5511999990000",
          id: "wamid.FLOW00001",
          timestamp: "1767225600",
          type: "interactive",
          interactive: {
            type: "nfm_reply",
            nfm_reply: {
              name: "flow",
              body: "Sent",
              response_json: JSON.stringify({ flow_token: TOKEN, slot: "10:30" }),
            },
          },
        }],
      })));
      const delivered = await fetch(`${service.origin}/webhook/whatsapp`, {
        method: "POST",
        headers: { "X-Hub-Signature-256": await signBody(TEST_SECRET, body) },
        body,
      });
      await delivered.body?.cancel();
      assert.equal(delivered.status, 200);
      await waitFor(
        () => service.output.some((line) => line.includes('"msg":"booking confirmed in chat"')),
        "the webhook handler to meet the booking",
        10_000,
      );
      const line = service.output.find((line) => line.includes("booking confirmed in chat"));
      assert.equal(JSON.parse(line!).isKnownBooking, true);
      assert.doesNotMatch(service.output.join("\n"), new RegExp(TOKEN));
      const { code } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.output.join("\n"));
    } finally {
      await service.stop("SIGTERM");
    }
  });
});
