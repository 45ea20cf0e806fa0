/**
 * Health endpoints for load balancers and orchestrators, and silence detection.
 *
 * - `GET /healthz`: the process is up and answers HTTP (liveness). Always 200.
 * - `GET /readyz`: the instance can take deliveries (readiness): the store answers a write and a
 *   read within a bound, the worker's claim loop has gone round recently, and the service is not
 *   shutting down. 200 `{ "status": "ready" }` or 503 `{ "status": "unavailable", "reasons" }`.
 *
 * Silence: when no delivery has been accepted for `silenceAfterMs` (counted from the start while
 * none has arrived), `/readyz` stays 200 but adds `"warnings": ["No delivery for … s"]`, one
 * warning line is logged when the silence starts (and one info line when deliveries resume), and
 * the `wa_webhook_delivery_silence` gauge reads 1. It is the "my webhook never arrives" case:
 * the instance is fine, but Meta is not sending to it (subscription, URL, certificate, app mode).
 * Silence is evaluated on each `/readyz` probe and each `/metrics` scrape.
 *
 * Destination backlog: when a running destination's oldest due delivery job has waited longer
 * than {@linkcode DESTINATION_BACKLOG_WARN_AFTER_MS}, `/readyz` stays 200 but adds a warning
 * naming the destination: its consumer is down, answered 410, or cannot keep up. Paused
 * destinations are left out: their jobs wait on purpose.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import type { RouteHandler } from "../http/router.ts";
import type { Logger } from "./log.ts";
import type { ServiceMetrics } from "./service_metrics.ts";
import { within } from "./timeout.ts";
import type { Store } from "../store/store.ts";

/** The worker is taken for stuck when its loop has not gone round for this long (10 polls). */
export const DEFAULT_WORKER_STALE_AFTER_MS = 10_000;
/** A store probe slower than this fails readiness: intake would time out behind such a store. */
export const DEFAULT_PROBE_TIMEOUT_MS = 2_000;

/**
 * A due delivery job older than this makes `/readyz` warn for its destination. The circuit's
 * longest probe interval is 5 minutes, so a healthy destination recovering from an outage clears
 * its oldest job well within 15; a job due for longer means deliveries are stuck, not slow.
 */
export const DESTINATION_BACKLOG_WARN_AFTER_MS = 15 * 60_000;

/** What {@linkcode createHealthHandlers} needs. */
export interface HealthOptions {
  store: Pick<Store, "name" | "probe">;
  /** The worker whose claim loop must be alive; none in a process that only records. */
  worker?: { lastLoopAt(): number };
  clock: Clock;
  /** True once the service started draining; `/readyz` then answers 503 without other checks. */
  isShuttingDown: () => boolean;
  /** No delivery for this long is a silence; 0 turns silence detection off. */
  silenceAfterMs: number;
  /** When the last delivery was accepted (ms since the epoch), `undefined` before the first. */
  lastDeliveryAt: () => number | undefined;
  logger: Logger;
  /**
   * When given, its `wa_webhook_delivery_silence` gauge follows the silence, and each scrape
   * evaluates the silence too (a collector is added to its registry).
   */
  metrics?: ServiceMetrics;
  /**
   * The running destinations whose oldest due job is checked on each `/readyz` (one job read per
   * destination, in due order); none by default.
   */
  destinations?: { names: readonly string[]; store: Pick<Store, "jobFigures"> };
  /** Defaults to {@linkcode DEFAULT_WORKER_STALE_AFTER_MS}. */
  workerStaleAfterMs?: number;
  /** Defaults to {@linkcode DEFAULT_PROBE_TIMEOUT_MS}. */
  probeTimeoutMs?: number;
}

/** The body of a `/readyz` answer. */
export interface Readiness {
  status: "ready" | "unavailable";
  /** Why the instance is not ready; present with `unavailable`. */
  reasons?: string[];
  /** What an operator should know although the instance is ready (silence). */
  warnings?: string[];
}

/** The handlers of `GET /healthz` and `GET /readyz` (routed in `src/routes.ts`). */
export interface HealthHandlers {
  /** Liveness: always 200 `{ "status": "ok" }`. */
  healthz: RouteHandler;
  /** Readiness: 200 `{ "status": "ready" }` or 503 with the reasons, and the silence warning. */
  readyz: RouteHandler;
}

/**
 * The health handlers. They need no token: they reveal nothing but readiness and how long the
 * instance has gone without deliveries. When `metrics` is given, a collector is added to its
 * registry so that each scrape evaluates the silence too.
 */
export function createHealthHandlers(options: HealthOptions): HealthHandlers {
  const { store, worker, clock, isShuttingDown } = options;
  const workerStaleAfterMs = options.workerStaleAfterMs ?? DEFAULT_WORKER_STALE_AFTER_MS;
  const probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const silence = createSilenceMonitor(options);
  options.metrics?.registry.addCollector(() => void silence.check());

  return {
    healthz: () => Response.json({ status: "ok" }, { headers: _NO_STORE }),
    readyz: async () => {
      const reasons: string[] = [];
      if (isShuttingDown()) {
        reasons.push("Shutting down");
      } else {
        const storeProblem = await probeStore(store, clock.now(), probeTimeoutMs);
        if (storeProblem !== undefined) reasons.push(storeProblem);
        if (worker) {
          const workerProblem = _workerProblem(
            worker.lastLoopAt(),
            clock.now(),
            workerStaleAfterMs,
          );
          if (workerProblem !== undefined) reasons.push(workerProblem);
        }
      }
      const silenceWarning = silence.check();
      const warnings = [
        ...(silenceWarning !== undefined ? [silenceWarning] : []),
        ...await _backlogWarnings(options.destinations, clock.now()),
      ];
      const body: Readiness = {
        status: reasons.length === 0 ? "ready" : "unavailable",
        ...(reasons.length > 0 ? { reasons } : {}),
        ...(warnings.length > 0 ? { warnings } : {}),
      };
      return Response.json(body, {
        status: reasons.length === 0 ? 200 : 503,
        headers: _NO_STORE,
      });
    },
  };
}

/**
 * Runs the store's probe (a write and a read) within `timeoutMs`. Returns a reason a person can
 * act on, or `undefined` when the store answered.
 */
export async function probeStore(
  store: Pick<Store, "name" | "probe">,
  now: number,
  timeoutMs: number = DEFAULT_PROBE_TIMEOUT_MS,
): Promise<string | undefined> {
  const work = store.probe(now);
  try {
    const isDone = await within(work.then(() => true), timeoutMs, { otherwise: false });
    if (!isDone) {
      work.catch(() => {}); // it may still fail after the answer; nobody waits for it
      return `Cannot use ${store.name}: a write and a read took longer than ${timeoutMs} ms`;
    }
    return undefined;
  } catch (error) {
    return `Cannot use ${store.name}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** What {@linkcode createSilenceMonitor} needs. */
export type SilenceMonitorOptions = Pick<
  HealthOptions,
  "clock" | "silenceAfterMs" | "lastDeliveryAt" | "logger" | "metrics"
>;

/** Tells whether deliveries have gone silent, logging each change once. */
export interface SilenceMonitor {
  /**
   * Evaluates the silence now: returns the warning while silent (`No delivery for 3600 s`),
   * `undefined` otherwise. Logs a warning when a silence starts and an info line when it ends,
   * and sets the silence gauge.
   */
  check(): string | undefined;
}

/**
 * Creates a silence monitor. Until the first delivery, the silence counts from the monitor's
 * creation (the start of the service), so an instance that never receives anything warns too.
 */
export function createSilenceMonitor(options: SilenceMonitorOptions): SilenceMonitor {
  const { clock, silenceAfterMs, lastDeliveryAt, logger, metrics } = options;
  const startedAt = clock.now();
  let isSilent = false;
  return {
    check() {
      if (silenceAfterMs <= 0) return undefined;
      const last = lastDeliveryAt();
      const silentForMs = Math.max(0, clock.now() - (last ?? startedAt));
      const isSilentNow = silentForMs >= silenceAfterMs;
      if (isSilentNow && !isSilent) {
        logger.warn("no delivery", {
          silentForMs,
          silenceAfterMs,
          lastDeliveryAt: last === undefined ? null : new Date(last).toISOString(),
        });
      } else if (!isSilentNow && isSilent) {
        logger.info("deliveries resumed", { silenceAfterMs });
      }
      isSilent = isSilentNow;
      metrics?.deliverySilence.set({}, isSilent ? 1 : 0);
      return isSilent ? `No delivery for ${Math.floor(silentForMs / 1_000)} s` : undefined;
    },
  };
}

const _NO_STORE = { "Cache-Control": "no-store" };

/**
 * A warning per destination whose oldest due job has waited past
 * {@linkcode DESTINATION_BACKLOG_WARN_AFTER_MS}, or whose jobs cannot be read. Reads one job per
 * destination: the oldest due comes first.
 */
async function _backlogWarnings(
  destinations: HealthOptions["destinations"],
  now: number,
): Promise<string[]> {
  const warnings: string[] = [];
  for (const name of destinations?.names ?? []) {
    try {
      const { oldestDueAgeMs } = await destinations!.store.jobFigures(name, { now, limit: 1 });
      if (oldestDueAgeMs > DESTINATION_BACKLOG_WARN_AFTER_MS) {
        warnings.push(
          `Destination "${name}" has a delivery due for ${Math.floor(oldestDueAgeMs / 1_000)} s`,
        );
      }
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      warnings.push(`Cannot read the backlog of destination "${name}": ${reason}`);
    }
  }
  return warnings;
}

function _workerProblem(lastLoopAt: number, now: number, staleAfterMs: number): string | undefined {
  if (lastLoopAt === 0) return "Worker loop has not started";
  const idleMs = now - lastLoopAt;
  if (idleMs > staleAfterMs) {
    return `Worker loop has not run for ${Math.round(idleMs / 1_000)} s (limit ${
      Math.round(staleAfterMs / 1_000)
    } s)`;
  }
  return undefined;
}
