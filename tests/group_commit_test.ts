import assert from "node:assert/strict";
import { createGroupCommitter } from "../src/store/group_commit.ts";

/** A committer whose commits only record their items, each resolving a moment later. */
function recordingCommitter(options: { maxChecks: number; maxGroupSize: number }) {
  const commits: string[][] = [];
  const committer = createGroupCommitter<string, number>({
    ...options,
    maxInFlight: 1,
    // Items are "<check>:<n>": items with the same prefix share a check.
    checkOf: (item) => item.split(":")[0],
    commit: async (items) => {
      commits.push(items);
      await new Promise((resolve) => setTimeout(resolve, 1));
      return items.map((_, i) => commits.length * 100 + i);
    },
  });
  return { committer, commits };
}

Deno.test("a commit holds many items that share checks, but no more checks than maxChecks", async () => {
  const { committer, commits } = recordingCommitter({ maxChecks: 2, maxGroupSize: 50 });
  const items = ["a:0", "a:1", "a:2", "b:0", "b:1", "a:3", "c:0", "c:1", "b:2", "d:0"];
  const results = await Promise.all(items.map((item) => committer.submit(item)));

  // The first commits alone; the rest gather while it runs, cut before a third check.
  assert.deepEqual(commits, [
    ["a:0"],
    ["a:1", "a:2", "b:0", "b:1", "a:3"],
    ["c:0", "c:1", "b:2"],
    ["d:0"],
  ]);
  assert.equal(new Set(results).size, items.length, "each item got its own result");
});

Deno.test("maxGroupSize still bounds a commit whose items all share one check", async () => {
  const { committer, commits } = recordingCommitter({ maxChecks: 10, maxGroupSize: 3 });
  await Promise.all(Array.from({ length: 7 }, (_, n) => committer.submit(`a:${n}`)));
  assert.deepEqual(commits.map((items) => items.length), [1, 3, 3]);
});

Deno.test("items submitted together share their commits, the first one not committed alone", async () => {
  const { committer, commits } = recordingCommitter({ maxChecks: 10, maxGroupSize: 4 });
  const results = await committer.submitAll(["a:0", "a:1", "a:2", "a:3", "a:4", "a:5"]);
  assert.deepEqual(commits, [["a:0", "a:1", "a:2", "a:3"], ["a:4", "a:5"]]);
  assert.deepEqual(results, [100, 101, 102, 103, 200, 201], "results in the items' order");
});

Deno.test("maxGroupMutations cuts a commit before its items' writes pass it, a large item alone", async () => {
  const commits: string[][] = [];
  const committer = createGroupCommitter<string, number>({
    maxGroupSize: 50,
    maxInFlight: 1,
    // Items are "<name>:<writes>".
    mutationsOf: (item) => Number(item.split(":")[1]),
    maxGroupMutations: 10,
    commit: (items) => {
      commits.push(items);
      return Promise.resolve(items.map((_, i) => i));
    },
  });
  await committer.submitAll(["a:4", "b:4", "c:4", "d:12", "e:1"]);
  assert.deepEqual(commits, [["a:4", "b:4"], ["c:4"], ["d:12"], ["e:1"]]);
});
