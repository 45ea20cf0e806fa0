/**
 * Signed deliveries of one text message each, with ids the tests can look up: for the subprocess
 * tests (the single binary, `deno serve --parallel`, Deno Deploy, KV Connect).
 *
 * @module
 */
import { signBody } from "../src/webhook/signature.ts";
import { messagesDelivery } from "./deliveries.ts";
import { TEST_SECRET } from "./support.ts";

/** One signed delivery and the id of the event it holds. */
export interface SignedDelivery {
  /** The event id, `message:<wamid>`. */
  id: string;
  body: Uint8Array<ArrayBuffer>;
  /** The `X-Hub-Signature-256` header value. */
  signature: string;
}

/**
 * A delivery of text message number `n`, wamid `wamid.<tag><n>`, signed with the test secret,
 * sent now (the services under test run on the system clock: a reply to it is inside the window).
 */
export async function textDelivery(n: number, tag = "T"): Promise<SignedDelivery> {
  const wamid = `wamid.${tag}${String(n).padStart(5, "0")}`;
  const body = new TextEncoder().encode(JSON.stringify(messagesDelivery({
    messages: [{
      from: "5511999990000",
      id: wamid,
      timestamp: String(Math.floor(Date.now() / 1000)),
      type: "text",
      text: { body: `n${n}` },
    }],
  })));
  return { id: `message:${wamid}`, body, signature: await signBody(TEST_SECRET, body) };
}

/** Posts `delivery` to `origin`; returns the status, or 0 when the connection failed. */
export async function postSigned(origin: string, delivery: SignedDelivery): Promise<number> {
  try {
    const response = await fetch(`${origin}/webhook/whatsapp`, {
      method: "POST",
      headers: { "X-Hub-Signature-256": delivery.signature },
      body: delivery.body,
    });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}
