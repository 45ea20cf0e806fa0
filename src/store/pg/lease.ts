/**
 * Leases as the PostgreSQL store holds them: a random token written into the rows of the events
 * (or the delivery job) it holds. Whatever takes a row away from its holder (a claim after the
 * lease ran out, a replay) writes another token or none, so every change under a lease checks the
 * token in its `WHERE` and a lost lease changes nothing.
 *
 * @module
 */
import type { JobRecord } from "../job_record.ts";
import type { ClaimedEvent, Lease } from "../store.ts";

/** A lease on events claimed (or recorded leased) together: its token, its end, its events. */
export class PgLease implements Lease {
  /** The token in the rows it holds. */
  readonly token: string;
  /** When it ends, ms since the epoch; moved by extensions. */
  until: number;
  /** The events it holds whose results are not stored yet. */
  readonly ids: Set<string>;
  /**
   * Those of `ids` whose results are being stored: an extension leaves them out, since a result
   * stored meanwhile clears their token without the lease being lost.
   */
  readonly settling = new Set<string>();

  /** A lease `token` until `until` on the events `ids`. */
  constructor(token: string, until: number, ids: Iterable<string>) {
    this.token = token;
    this.until = until;
    this.ids = new Set(ids);
  }
}

/** A lease on one delivery job: its token, and the job's record as the claim stored it. */
export class PgJobLease implements Lease {
  /** The token in the job's row. */
  readonly token: string;
  /** The job as stored under this lease. */
  record: JobRecord;

  /** A lease `token` on `record`. */
  constructor(token: string, record: JobRecord) {
    this.token = token;
    this.record = record;
  }

  /** When the lease ends: the leased job's due time. */
  get until(): number {
    return this.record.dueAt!;
  }
}

/** The PostgreSQL lease behind a lease handle; throws for one another store made. */
export function pgLease(lease: Lease): PgLease {
  if (!(lease instanceof PgLease)) throw new TypeError("Cannot use a lease another store made");
  return lease;
}

/** The lease of a claimed event; throws for one another store made. */
export function pgClaimLease(claim: ClaimedEvent): PgLease {
  return pgLease(claim.lease);
}

/** The PostgreSQL job lease behind a lease handle; throws for one claimJobs did not make. */
export function pgJobLease(lease: Lease): PgJobLease {
  if (!(lease instanceof PgJobLease)) {
    throw new TypeError("Cannot use a lease not made by claimJobs");
  }
  return lease;
}
