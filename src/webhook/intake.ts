/**
 * The delivery endpoint: read the bounded raw body, verify its signature, parse it, hand it to the
 * recorder, and acknowledge with 200 only once the recorder has succeeded.
 *
 * @module
 */
import { HttpError } from "../http/errors.ts";
import type { RouteHandler } from "../http/router.ts";
import type { Logger } from "../log.ts";
import { readBoundedBody } from "./body.ts";
import { SIGNATURE_HEADER, type SignatureVerifier } from "./signature.ts";

/** A delivery whose signature was valid, decoded from JSON. */
export interface VerifiedDelivery {
  /** The parsed JSON body, of any shape: parsing into events is the recorder's job. */
  payload: unknown;
  /** Size of the signed body in bytes. */
  bytes: number;
}

/**
 * Stores a verified delivery durably. It resolves once nothing of it can be lost and throws when
 * it could not record it (the request is then answered 503 so Meta retries).
 */
export type DeliveryRecorder = (delivery: VerifiedDelivery, log: Logger) => Promise<void>;

/** Options for {@linkcode createIntakeHandler}. */
export interface IntakeOptions {
  verifier: SignatureVerifier;
  maxBodyBytes: number;
  recordDelivery: DeliveryRecorder;
}

const _decoder = new TextDecoder("utf-8", { fatal: true });

/** Handles `POST /webhook/whatsapp`. */
export function createIntakeHandler(options: IntakeOptions): RouteHandler {
  return async (request, { log }) => {
    const body = await readBoundedBody(request, options.maxBodyBytes);
    const check = await options.verifier.verify(request.headers.get(SIGNATURE_HEADER), body);
    if (!check.valid) throw new HttpError(401, check.reason);

    const payload = _parseJson(body);
    try {
      await options.recordDelivery({ payload, bytes: body.byteLength }, log);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      log.error("delivery not recorded", { error });
      throw new HttpError(503, "Cannot record the delivery now; retry later");
    }
    return new Response("OK", { headers: { "Content-Type": "text/plain; charset=utf-8" } });
  };
}

function _parseJson(body: Uint8Array): unknown {
  let text: string;
  try {
    text = _decoder.decode(body);
  } catch {
    throw new HttpError(400, "Body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `Body is not valid JSON: ${(error as Error).message}`);
  }
}
