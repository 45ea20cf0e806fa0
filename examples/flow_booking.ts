/**
 * An example entry: a WhatsApp Flow that books an appointment in two screens. `APPOINTMENT`
 * offers the free slots (sent on `INIT`, and again when the user comes back to it); submitting it
 * shows `CONFIRM` with the chosen slot; submitting that books the slot and closes the flow, whose
 * parameters reach the chat as an `nfm_reply` message with the same flow token. A token already
 * used is refused (427), and the user sees why.
 *
 * Run it with `deno task run examples/flow_booking.ts`, a Flows private key configured
 * (`FLOWS_PRIVATE_KEY` or `FLOWS_PRIVATE_KEY_FILE`, see `deno task flows-keygen`).
 *
 * @module
 */
import { completeFlow, Dispatcher, Flows, InvalidFlowTokenError } from "../mod.ts";
import { runService } from "../main.ts";

/** The slots on offer; a real service would read its calendar. */
const SLOTS = ["09:00", "10:30", "14:00", "16:30"];
/** Booked slots by flow token, in memory: enough for an example. */
const booked = new Map<string, string>();

const flows = new Flows()
  .onInit(() => ({ screen: "APPOINTMENT", data: { slots: _freeSlots() } }))
  .onBack("APPOINTMENT", () => ({ screen: "APPOINTMENT", data: { slots: _freeSlots() } }))
  .onDataExchange("APPOINTMENT", ({ data }) => {
    const slot = String(data.slot);
    if (!_freeSlots().includes(slot)) {
      return {
        screen: "APPOINTMENT",
        data: { slots: _freeSlots(), error_message: "That time was just taken" },
      };
    }
    return { screen: "CONFIRM", data: { slot } };
  })
  .onDataExchange("CONFIRM", ({ flowToken, data, log }) => {
    if (booked.has(flowToken)) throw new InvalidFlowTokenError("This booking is already made");
    booked.set(flowToken, String(data.slot));
    log.info("appointment booked");
    return completeFlow(flowToken, { slot: data.slot });
  });

// The completed flow arrives on the webhook too: the same flow token in `response_json`.
const bot = new Dispatcher().onMessage("interactive", ({ event, log }) => {
  const interactive = event.message.interactive;
  if (interactive.type !== "nfm_reply") return;
  const answer = JSON.parse(interactive.nfm_reply.response_json);
  log.info("booking confirmed in chat", { isKnownBooking: booked.has(answer.flow_token) });
}, { name: "booking-confirmation" });

await runService({ args: Deno.args, dispatcher: bot, flows });

function _freeSlots(): string[] {
  const taken = new Set(booked.values());
  return SLOTS.filter((slot) => !taken.has(slot));
}
