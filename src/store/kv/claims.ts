/**
 * Claiming due events: the events of due ready entries (as many as the backend's checks per atomic
 * allow) move into one new lease entry at the end of the lease, in an atomic that checks each
 * entry's versionstamp, so two workers (or processes) never hold the same event, and events whose
 * worker died become due again by themselves when their lease entry comes due. The record is not
 * rewritten by a claim: an event is "processing" while it is away from its entry at `record.dueAt`
 * (see `event_log.ts`).
 *
 * @module
 */
import type { Logger } from "../../ops/log.ts";
import { withSpan } from "../../ops/telemetry.ts";
import type { ClaimOptions } from "../store.ts";
import { commitWithRetry } from "./commit.ts";
import { getManyInBatches } from "./get_many.ts";
import {
  eventKey,
  idsOfEntry,
  type KvEventRecord,
  READY_PREFIX,
  type ReadyEntryValue,
  readyEntryValue,
  readyKey,
} from "./keys.ts";
import { type KvClaim, KvLease } from "./lease.ts";
import { readEvent } from "./parts.ts";

type _DueEntry = Deno.KvEntry<ReadyEntryValue>;

/**
 * Claims due events: lists due entries (skipping those holding an event the caller runs) up to
 * `limit` events, then claims them in batches of `entriesPerClaim` entries (one check each: the
 * checks the backend allows) at once, so their reads and commits overlap in Deno KV. Events that
 * cannot be read are logged and left to their lease.
 */
export async function claimDue(
  kv: Deno.Kv,
  options: ClaimOptions,
  { logger, entriesPerClaim }: { logger: Logger; entriesPerClaim: number },
): Promise<KvClaim[]> {
  const { now, limit } = options;
  const due: _DueEntry[] = [];
  let dueEvents = 0;
  const iterator = kv.list<ReadyEntryValue>(
    { start: READY_PREFIX, end: readyKey(now + 1, "") },
    { limit },
  );
  for await (const entry of iterator) {
    const ids = idsOfEntry(entry.value);
    // An entry holding an event the caller runs is its own expired lease: its keeper has it.
    if (options.isRunning && ids.some(options.isRunning)) continue;
    due.push(entry);
    dueEvents += ids.length;
    if (dueEvents >= limit) break;
  }
  // Room taken meanwhile (slots reserved for the intake) is not claimed.
  let room = Math.max(0, Math.min(limit, options.room?.() ?? limit));
  const batches: { entries: _DueEntry[]; room: number }[] = [];
  for (let i = 0; i < due.length && room > 0; i += entriesPerClaim) {
    const entries = due.slice(i, i + entriesPerClaim);
    const events = entries.reduce((sum, entry) => sum + idsOfEntry(entry.value).length, 0);
    batches.push({ entries, room: Math.min(room, events) });
    room -= Math.min(room, events);
  }
  const claimed = await Promise.all(
    batches.map((batch) =>
      withSpan("worker.claim", async (span) => {
        const claims = await _claimBatch(kv, batch.entries, batch.room, options.leaseUntil, logger);
        span.setAttributes({
          "wa.events.due": batch.entries.length,
          "wa.events.claimed": claims.length,
        });
        return claims;
      }, { root: true })
    ),
  );
  return claimed.flat();
}

/**
 * Claims due entries in one atomic, each checked by its versionstamp: their claimable events (at
 * most `room` in all) move to one new lease entry at `leaseUntil`, the rest stay where they are,
 * and events that are done, dead or expired are dropped. If another worker took one of the
 * entries, they are claimed one by one.
 */
async function _claimBatch(
  kv: Deno.Kv,
  entries: _DueEntry[],
  room: number,
  leaseUntil: number,
  logger: Logger,
): Promise<KvClaim[]> {
  const ids = entries.flatMap((entry) => idsOfEntry(entry.value));
  const records = new Map<string, KvEventRecord>();
  for (const entry of await getManyInBatches<KvEventRecord>(kv, ids.map(eventKey))) {
    const record = entry.value;
    if (record && (record.state === "pending" || record.state === "retrying")) {
      records.set(record.id, record);
    }
  }
  const plans = _planClaims(entries, records, room);
  // Together, the events claimed from every entry share one lease; alone, each entry's do.
  const claim = async (group: _ClaimPlan[]): Promise<KvLease | undefined> => {
    const ids = group.flatMap((plan) => plan.taken);
    const key = readyKey(leaseUntil, crypto.randomUUID());
    const result = await commitWithRetry(() => {
      const atomic = kv.atomic();
      for (const { entry, rest } of group) {
        atomic.check(entry);
        if (rest.length > 0) atomic.set(entry.key, readyEntryValue(rest));
        else atomic.delete(entry.key);
      }
      if (ids.length > 0) atomic.set(key, readyEntryValue(ids));
      return atomic;
    });
    return result.ok && ids.length > 0 ? new KvLease(key, result.versionstamp, ids) : undefined;
  };
  const won: KvLease[] = [];
  const together = await claim(plans);
  if (together || plans.every((plan) => plan.taken.length === 0)) {
    if (together) won.push(together);
  } else {
    for (const plan of plans) {
      const alone = await claim([plan]);
      if (alone) won.push(alone);
    }
  }
  const claims: KvClaim[] = [];
  for (const lease of won) {
    for (const id of [...lease.ids]) {
      const record = records.get(id)!;
      try {
        const event = await readEvent(kv, record);
        // Strings may be stored as UTF-16: two bytes a character.
        claims.push({ record, lease, event, bytes: 2 * JSON.stringify(record).length });
      } catch (error) {
        logger.error("cannot read event", { eventId: id, error });
      }
    }
  }
  return claims;
}

/** What a claim does to one due entry: the events it takes, and those it leaves there. */
interface _ClaimPlan {
  entry: _DueEntry;
  taken: string[];
  /** Claimable events beyond the room for runs; events that are not claimable are dropped. */
  rest: string[];
}

/**
 * Plans the claim of due entries: the claimable events (those in `records`) of each are taken, up
 * to `room` in all. An entry that would stay as it is gets no plan.
 */
function _planClaims(
  entries: readonly _DueEntry[],
  records: ReadonlyMap<string, KvEventRecord>,
  room: number,
): _ClaimPlan[] {
  let left = room;
  const plans: _ClaimPlan[] = [];
  for (const entry of entries) {
    const ids = idsOfEntry(entry.value);
    const claimable = ids.filter((id) => records.has(id));
    const taken = claimable.slice(0, Math.max(0, left));
    left -= taken.length;
    const rest = claimable.slice(taken.length);
    if (taken.length > 0 || rest.length < ids.length) plans.push({ entry, taken, rest });
  }
  return plans;
}
