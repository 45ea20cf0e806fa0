/**
 * The benchmark's baseline: a bare `Deno.serve` that reads the request body and answers 200.
 * Usage: `deno run --allow-net bench/baseline_server.ts <port>`.
 *
 * @module
 */
const port = Number(Deno.args[0] ?? 0);
Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (request) => {
  await request.arrayBuffer();
  return new Response("OK");
});
