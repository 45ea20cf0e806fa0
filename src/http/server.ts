/**
 * Keeps a service listening, and keeps every connection's life bounded.
 *
 * `Deno.serve` (Deno 2.9) has no header, idle or body timeout: an idle keep-alive connection, a
 * client that sent half its headers, and a client whose stalled body was already answered 408 (the
 * server goes on reading that body) each hold a connection until the client lets go. A handler
 * cannot close any of them, but aborting the `signal` given to `Deno.serve` closes every
 * connection of that server at once. So connections are recycled by rotating servers: every
 * server listens with `reusePort`, and a rotation starts a new server on the same port, then
 * retires the old one: once its requests in flight are answered (or a grace has passed), it is
 * shut down (it stops accepting and closes its idle connections) and then aborted, which closes
 * what is left: half-sent headers, bodies still arriving after their answer. It is not shut down
 * earlier because `shutdown()` ends the bodies still arriving.
 *
 * Servers rotate on an interval (the bound on an idle or half-sent connection's life) and soon
 * after an answer that asked for its connection to be closed (`Connection: close`, as a 408 or 413
 * mid-body does), at most once per {@linkcode CLOSING_ROTATION_MIN_MS}.
 *
 * On Linux a connection that completed its handshake but was not yet accepted when the old
 * listener closes is reset (`net.ipv4.tcp_migrate_req` is off by default): a rotation can, rarely,
 * reset a connection that was just opening. Measured with 8 loops opening connections as fast as
 * they can and a rotation every 100 ms: about 3 requests failed per rotation (0.5% of 58,000 in
 * 10 s), reset at connect or closed before their answer. Meta retries any delivery that fails.
 *
 * It also keeps the service listening when the process runs out of file descriptors: the
 * runtime's accept loop then ends ("Too many open files") and its listener closes. The stopped
 * server is retired and a new one listens on the same port, retried with a growing delay.
 *
 * @module
 */
import type { Logger } from "../ops/log.ts";
import { within } from "../ops/timeout.ts";
import { isConnectionCloseRequest } from "./connection.ts";

/**
 * A rotation asked for by a closing answer waits this long, so that the answer is on its way, and
 * rotations asked for by a flood of them come at most this often.
 */
export const CLOSING_ROTATION_MIN_MS = 1_000;
/**
 * A rotation retires the old server this long after the new one listens. Measured under 8
 * concurrent connection loops rotating every 100 ms: 20 ms halves the connections lost per rotation
 * (about 5 to about 2.5), most of them reset while waiting in the old listener's accept queue.
 */
export const HANDOVER_MS = 20;
/**
 * Once a retired server's requests are all answered, the answers get this long to be written
 * before the server's remaining connections are closed. The service's answers are small.
 */
export const ANSWER_WRITE_MS = 250;
/**
 * A server that stopped accepting connections (out of file descriptors) is started again on the
 * same port after this delay, doubled on each failure in a row up to the maximum.
 */
const RESTART_DELAY_MS = 50;
const RESTART_MAX_DELAY_MS = 2_000;
/** A restarted server that lasted this long starts the delay from the beginning again. */
const RESTART_RESET_MS = 10_000;

/** `Deno.serve` with TCP options, or a stand-in for it. */
export type ServeFunction = (
  options: Deno.ServeTcpOptions,
  handler: Deno.ServeHandler<Deno.NetAddr>,
) => Deno.HttpServer<Deno.NetAddr>;

/** Options for {@linkcode keepServing}. */
export interface KeepServingOptions {
  /** Starts one server; `Deno.serve` in the binary. */
  serve: ServeFunction;
  logger: Logger;
  /** Answers one request; never throws. */
  handler: (request: Request) => Promise<Response>;
  hostname: string;
  /** The port; 0 lets the system choose one, which every later server then listens on too. */
  port: number;
  /** Called when the first server listens. */
  onListen?: (address: Deno.NetAddr) => void;
  /** `Deno.serve`'s `onError`: a response body that failed. */
  onError?: (error: unknown) => Response | Promise<Response>;
  /**
   * Servers rotate this often, which bounds the life of an idle or half-sent connection; with
   * `undefined` they never rotate, closing answers included (where the platform owns the
   * connections, as on Deno Deploy), and a server is replaced only when out of file descriptors.
   */
  rotateEveryMs?: number;
  /**
   * A retired server's requests still in flight get this long to be answered before its
   * connections are closed: longer than the body deadline, so that a body still arriving ends in
   * its own 408 rather than a cut connection.
   */
  retireGraceMs: number;
}

/** The HTTP servers of a process: the current one and those being retired. */
export interface Servers {
  /** The address every server listens on. */
  addr: Deno.NetAddr;
  /** Starts a new server and retires the current one; what the interval and closing answers do. */
  rotate(reason: string): void;
  /**
   * Stops accepting connections and closes every connection once the requests in flight have been
   * answered (or `graceMs` has passed) and their answers written.
   */
  shutdown(graceMs: number): Promise<void>;
}

/** One server and what retiring it needs. */
interface Serving {
  server: Deno.HttpServer<Deno.NetAddr>;
  abort: AbortController;
  /** Requests whose handler has not returned yet. */
  inFlight: number;
  /** Resolves when `inFlight` is 0. */
  answered(): Promise<void>;
}

/**
 * Starts a server and keeps the service listening and its connections bounded (see the module
 * documentation). Throws what `serve` throws when the first server cannot listen.
 */
export function keepServing(options: KeepServingOptions): Servers {
  const { logger, rotateEveryMs, retireGraceMs } = options;
  const serving = new Set<Serving>();
  let isStopping = false;
  let restartDelayMs = RESTART_DELAY_MS;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;
  let closingTimer: ReturnType<typeof setTimeout> | undefined;
  let lastClosingRotation = -Infinity;
  let port = options.port;

  const start = (onListen: (address: Deno.NetAddr) => void): Serving => {
    const abort = new AbortController();
    let inFlight = 0;
    const waiters: (() => void)[] = [];
    const entry: Serving = {
      abort,
      get inFlight() {
        return inFlight;
      },
      answered: () =>
        inFlight === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve)),
      server: undefined as unknown as Deno.HttpServer<Deno.NetAddr>,
    };
    entry.server = options.serve({
      hostname: options.hostname,
      port,
      // Two servers share the port during a rotation; `--unstable-net` (deno.json) allows it.
      ...(rotateEveryMs === undefined ? {} : { reusePort: true }),
      signal: abort.signal,
      onListen,
      ...(options.onError ? { onError: options.onError } : {}),
    }, async (request) => {
      inFlight++;
      try {
        const response = await options.handler(request);
        if (response.headers.get("Connection") === "close") onClosingAnswer();
        return response;
      } finally {
        inFlight--;
        if (inFlight === 0) { for (const resolve of waiters.splice(0)) resolve(); }
      }
    });
    port = entry.server.addr.port;
    watch(entry);
    return entry;
  };

  /** Closes a server's connections once its requests are answered, or after `graceMs`. */
  const retire = async (entry: Serving, graceMs: number): Promise<void> => {
    // `shutdown()` ends the bodies still arriving (the requests end as if their clients had gone):
    // it waits for the requests in flight, while the server still accepts its share of connections.
    const answered = entry.answered().then(() => true);
    const isAnswered = await within(answered, graceMs, { otherwise: false });
    entry.server.shutdown().catch(() => {});
    if (!isAnswered) {
      logger.warn("requests still in flight were cut off", { inFlight: entry.inFlight, graceMs });
    }
    const finished = entry.server.finished.then(() => true, () => true);
    // Aborting a server that has finished fails inside the runtime's listener, uncaught.
    if (!await within(finished, ANSWER_WRITE_MS, { otherwise: false })) entry.abort.abort();
    await finished;
    serving.delete(entry);
  };

  const watch = (entry: Serving): void => {
    const startedAt = performance.now();
    serving.add(entry);
    entry.server.finished.catch((error) => {
      logger.error("server stopped accepting connections", { error });
      void retire(entry, retireGraceMs);
      if (performance.now() - startedAt > RESTART_RESET_MS) restartDelayMs = RESTART_DELAY_MS;
      restart();
    });
  };

  const restart = (): void => {
    if (isStopping) return;
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      try {
        start(({ hostname, port }) => logger.info("listening again", { hostname, port }));
      } catch (error) {
        logger.warn("cannot listen again yet", { error, retryInMs: restartDelayMs });
        restart();
      }
    }, restartDelayMs);
    restartDelayMs = Math.min(restartDelayMs * 2, RESTART_MAX_DELAY_MS);
  };

  let current = start((address) => options.onListen?.(address));

  const rotate = (reason: string): void => {
    if (isStopping || !serving.has(current)) return; // a restart is under way
    let next: Serving;
    try {
      next = start(() => {});
    } catch (error) {
      // Out of descriptors, say: the current server goes on serving.
      logger.warn("cannot rotate the server", { reason, error });
      return;
    }
    const old = current;
    current = next;
    logger.debug("server rotated", { reason });
    setTimeout(() => void retire(old, retireGraceMs), HANDOVER_MS);
  };

  // Soon after a closing answer, rate-limited: a flood of them rotates once per interval.
  const onClosingAnswer = (): void => {
    if (closingTimer !== undefined || isStopping || rotateEveryMs === undefined) return;
    const delayMs = Math.max(
      CLOSING_ROTATION_MIN_MS - (performance.now() - lastClosingRotation),
      ANSWER_WRITE_MS,
    );
    closingTimer = setTimeout(() => {
      closingTimer = undefined;
      lastClosingRotation = performance.now();
      rotate("a connection asked to be closed");
    }, delayMs);
  };

  const interval = rotateEveryMs === undefined
    ? undefined
    : setInterval(() => rotate("interval"), rotateEveryMs);

  return {
    get addr() {
      return current.server.addr;
    },
    rotate,
    async shutdown(graceMs) {
      isStopping = true;
      clearTimeout(restartTimer);
      clearTimeout(closingTimer);
      clearInterval(interval);
      await Promise.all([...serving].map((entry) => retire(entry, graceMs)));
    },
  };
}

/**
 * `Deno.serve`'s `onError`: the app never throws, so what arrives here is a response body that
 * failed. A body that fails on purpose to close its connection is not logged.
 */
export function onResponseError(logger: Logger): (error: unknown) => Response {
  return (error) => {
    if (!isConnectionCloseRequest(error)) logger.error("response failed", { error });
    return new Response(null, { status: 500 });
  };
}
