/**
 * The service inside your own program: `createService` reads no environment and never exits, so
 * you choose where its settings come from, how it is served and when it stops. Run it with
 * `deno task run examples/embed.ts`.
 *
 * @module
 */
import { createLogger, createService, Dispatcher } from "../mod.ts";

const env = (name: string): string | undefined => Deno.env.get(name);
const logger = createLogger({ level: "info" });
const service = await createService({
  config: {
    appSecrets: [env("APP_SECRET") ?? ""],
    verifyToken: env("VERIFY_TOKEN") ?? "",
    whatsappToken: env("WHATSAPP_TOKEN"),
    graphApiBaseUrl: env("GRAPH_API_BASE_URL"),
    kvPath: env("KV_PATH"),
  },
  dispatcher: new Dispatcher().onMessage("text", (ctx) => ctx.reply("hi"), { name: "hi" }),
  logger,
});
service.start();
const server = Deno.serve({
  hostname: env("HOST") ?? "127.0.0.1",
  port: Number(env("PORT") ?? 3001),
  onListen: ({ hostname, port }) => logger.info("listening", { hostname, port }),
}, service.fetch);
Deno.addSignalListener("SIGTERM", async () => {
  await service.stop();
  await server.shutdown();
  Deno.exit(0);
});
