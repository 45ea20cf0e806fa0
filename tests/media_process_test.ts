/**
 * Media capture in the service as the start task runs it (its exact permission flags: `./data`
 * only), in a fresh checkout: the default `MEDIA_DIR` is inside `./data`, and a 100 MB document
 * streams through the process without being held (its peak RSS, from `/proc`, grows far less than
 * the document).
 *
 * @module
 */
import assert from "node:assert/strict";
import { messagesDelivery } from "./deliveries.ts";
import { FAKE_TOKEN, startFakeGraphApi } from "./fake_graph_api.ts";
import { freshCheckout } from "./fresh_checkout.ts";
import { startService } from "./service_process.ts";
import {
  postDelivery,
  TEST_ADMIN_TOKEN,
  TEST_SECRET,
  TEST_VERIFY_TOKEN,
  waitFor,
} from "./support.ts";

const DOCUMENT_BYTES = 100_000_000;
/** Far below the document: a capture that held it would grow by 100 MB or more. */
const MAX_RSS_GROWTH_BYTES = 60 * 1024 * 1024;

/** A `/proc/<pid>/status` figure (`VmRSS`, `VmHWM`: the peak) in bytes. */
async function memoryOf(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1];
  assert.ok(kib, `${field} in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

Deno.test({
  name: "the started service captures a 100 MB document into ./data/media without holding it",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using fake = startFakeGraphApi();
    await using checkout = await freshCheckout();
    const hex = await fake.addMedia("4100", { mimeType: "application/pdf", size: DOCUMENT_BYTES });
    const smallHex = await fake.addMedia("4099", { mimeType: "application/pdf", size: 100_000 });
    await using service = await startService(
      {
        PORT: "0",
        HOST: "127.0.0.1",
        APP_SECRET: TEST_SECRET,
        VERIFY_TOKEN: TEST_VERIFY_TOKEN,
        ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        WHATSAPP_TOKEN: FAKE_TOKEN,
        GRAPH_API_BASE_URL: fake.url,
        MEDIA_CAPTURE: "on",
        LOG_LEVEL: "info",
      },
      undefined,
      { cwd: checkout.path },
    );
    const pid = service.process.pid;
    // A small document first: the code of the capture is compiled before the measure starts.
    await _postDocument(service.origin, "wamid.SMALLDOC", "4099", smallHex);
    await waitFor(() => _isStored(service.output, "4099"), "the small document stored");
    const before = await memoryOf(pid, "VmRSS");
    await _postDocument(service.origin, "wamid.BIGDOC", "4100", hex);
    await waitFor(() => _isStored(service.output, "4100"), "the document stored", 120_000);
    const growth = (await memoryOf(pid, "VmHWM")) - before;
    assert.ok(
      growth < MAX_RSS_GROWTH_BYTES,
      `peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB for a 100 MB document`,
    );

    const file = await Deno.stat(`${checkout.path}/data/media/4100.bin`);
    assert.equal(file.size, DOCUMENT_BYTES);
    const served = await fetch(`${service.origin}/admin/media/4100`, {
      headers: { Authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });
    assert.equal(served.status, 200);
    assert.equal(served.headers.get("content-length"), String(DOCUMENT_BYTES));
    assert.equal(served.headers.get("content-type"), "application/pdf");
    await served.body?.cancel();
    assert.doesNotMatch(service.output.join("\n"), /fake-graph-token|whatsapp_business\/attach/);
  },
});

function _isStored(output: string[], mediaId: string): boolean {
  return output.some((line) =>
    line.includes('"msg":"media stored"') && line.includes(`"${mediaId}"`)
  );
}

async function _postDocument(origin: string, wamid: string, mediaId: string, sha256: string) {
  const body = JSON.stringify(messagesDelivery({
    contacts: [{ profile: { name: "Ana" }, wa_id: "5511999990000" }],
    messages: [{
      from: "5511999990000",
      id: wamid,
      timestamp: "1767225600",
      type: "document",
      document: { id: mediaId, mime_type: "application/pdf", sha256, filename: "a.pdf" },
    }],
  }));
  const posted = await postDelivery(origin, body);
  assert.equal(posted.status, 200);
  await posted.body?.cancel();
}
