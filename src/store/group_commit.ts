/**
 * Group commit: items submitted while a commit is under way are gathered and written together in
 * the next one, so concurrent requests share Deno KV's disk syncs. Nothing waits for a timer: a
 * lone item (or the items of one call) is committed at once, and a group forms from items
 * submitted together or arriving while earlier commits are running, so the wait is bounded by one
 * commit.
 *
 * @module
 */

/** Options for {@linkcode createGroupCommitter}. */
export interface GroupCommitOptions<T, R> {
  /** Items per commit at most (10 for inbox events: one dedup check each). */
  maxGroupSize: number;
  /** Estimated bytes of an item, to keep a commit under Deno KV's 800 KiB limit. */
  sizeOf?: (item: T) => number;
  /** Bytes per commit at most, by `sizeOf`. */
  maxGroupBytes?: number;
  /** The writes (mutations) an item adds to its commit, to keep under Deno KV's 1000. */
  mutationsOf?: (item: T) => number;
  /** Mutations per commit at most, by `mutationsOf`. */
  maxGroupMutations?: number;
  /**
   * What an item checks in its commit (Deno KV's `check`): items that return the same value share
   * one check. With `maxChecks`, bounds the checks of a commit beside its items.
   */
  checkOf?: (item: T) => unknown;
  /** Distinct checks per commit at most, by `checkOf`. */
  maxChecks?: number;
  /** Commits running at the same time (default 2: one writing while the next one gathers). */
  maxInFlight?: number;
  /**
   * Commits a group; returns one result per item, in order. Throwing fails every item of the
   * group, and only them.
   */
  commit: (items: T[]) => Promise<R[]>;
}

/** Submits items to be committed with others. */
export interface GroupCommitter<T, R> {
  /** Resolves with the item's result once the commit holding it succeeded. */
  submit(item: T): Promise<R>;
  /**
   * Submits items together: they go into the same commits (as many as their limits need), never
   * one alone ahead of the others. Resolves with their results in order.
   */
  submitAll(items: readonly T[]): Promise<R[]>;
}

interface _Waiting<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

/** Creates a committer that gathers concurrently submitted items into shared commits. */
export function createGroupCommitter<T, R>(
  options: GroupCommitOptions<T, R>,
): GroupCommitter<T, R> {
  const maxInFlight = options.maxInFlight ?? 2;
  const sizeOf = options.sizeOf ?? (() => 0);
  const maxGroupBytes = options.maxGroupBytes ?? Infinity;
  const mutationsOf = options.mutationsOf ?? (() => 0);
  const maxGroupMutations = options.maxGroupMutations ?? Infinity;
  const checkOf = options.checkOf ?? ((item: T) => item);
  const maxChecks = options.maxChecks ?? Infinity;
  const queue: _Waiting<T, R>[] = [];
  let inFlight = 0;

  function takeGroup(): _Waiting<T, R>[] {
    const group: _Waiting<T, R>[] = [];
    const checks = new Set<unknown>();
    let bytes = 0;
    let mutations = 0;
    while (queue.length > 0 && group.length < options.maxGroupSize) {
      const next = queue[0]!;
      const size = sizeOf(next.item);
      const writes = mutationsOf(next.item);
      const check = checkOf(next.item);
      const isNewCheck = !checks.has(check);
      if (group.length > 0 && bytes + size > maxGroupBytes) break;
      if (group.length > 0 && mutations + writes > maxGroupMutations) break;
      if (group.length > 0 && isNewCheck && checks.size >= maxChecks) break;
      group.push(queue.shift()!);
      bytes += size;
      mutations += writes;
      checks.add(check);
    }
    return group;
  }

  function pump(): void {
    while (inFlight < maxInFlight && queue.length > 0) {
      const group = takeGroup();
      inFlight++;
      options.commit(group.map((waiting) => waiting.item)).then(
        (results) => group.forEach((waiting, i) => waiting.resolve(results[i] as R)),
        (error) => group.forEach((waiting) => waiting.reject(error)),
      ).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  function submitAll(items: readonly T[]): Promise<R[]> {
    const results = items.map((item) =>
      new Promise<R>((resolve, reject) => queue.push({ item, resolve, reject }))
    );
    pump();
    return Promise.all(results);
  }

  return {
    submit: async (item) => (await submitAll([item]))[0]!,
    submitAll,
  };
}
