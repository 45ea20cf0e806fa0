import assert from "node:assert/strict";
import { loadConfig } from "../src/config_env.ts";
import { DEPLOYMENT_ID_VARIABLE, isDenoDeploy } from "../src/ops/deno_deploy.ts";
import {
  checksPerAtomicAt,
  describeKvLocation,
  isKvConnectUrl,
  KV_CONNECT_CHECKS_PER_ATOMIC,
  type KvLocation,
  kvOpenFailureReason,
  selectKvLocation,
} from "../src/store/kv/location.ts";

const LOCAL = { isKvPathSet: true, isDeploy: false };

Deno.test("selectKvLocation() opens the app's database on Deno Deploy when KV_PATH is unset", () => {
  const defaulted =
    loadConfig({ APP_SECRET: "test-app-secret-0123456789", VERIFY_TOKEN: "t" }).config.kvPath;
  assert.deepEqual(selectKvLocation(defaulted, { isKvPathSet: false, isDeploy: true }), {
    kind: "deploy",
    path: undefined,
  });
  // Locally the default is the file in ./data, whether KV_PATH was set or not.
  assert.deepEqual(selectKvLocation(defaulted, { isKvPathSet: false, isDeploy: false }), {
    kind: "file",
    path: "./data/wa-webhook.kv",
  });
});

Deno.test("selectKvLocation() keeps a file, :memory: and a KV Connect URL as configured", () => {
  const cases: [string, KvLocation][] = [
    ["./data/wa-webhook.kv", { kind: "file", path: "./data/wa-webhook.kv" }],
    ["/var/lib/wa-webhook/kv.sqlite", { kind: "file", path: "/var/lib/wa-webhook/kv.sqlite" }],
    [":memory:", { kind: "memory", path: ":memory:" }],
    [
      "https://api.deno.com/databases/1b2c/connect",
      { kind: "kv-connect", path: "https://api.deno.com/databases/1b2c/connect" },
    ],
    ["http://10.0.0.5:4512", { kind: "kv-connect", path: "http://10.0.0.5:4512" }],
  ];
  for (const [kvPath, expected] of cases) {
    assert.deepEqual(selectKvLocation(kvPath, LOCAL), expected, kvPath);
  }
  // On Deploy a URL set on purpose is used; a file is used too, with a warning.
  const url = "https://kv.example.com/";
  assert.deepEqual(selectKvLocation(url, { isKvPathSet: true, isDeploy: true }), {
    kind: "kv-connect",
    path: url,
  });
  const file = selectKvLocation("./kv.sqlite", { isKvPathSet: true, isDeploy: true });
  assert.equal(file.kind, "file");
  assert.match(file.warning ?? "", /KV_PATH is a local file on Deno Deploy.*unset it/);
});

Deno.test("isKvConnectUrl() tells URLs from file names", () => {
  assert.equal(isKvConnectUrl("https://kv.example.com"), true);
  assert.equal(isKvConnectUrl("HTTP://127.0.0.1:4512/"), true);
  assert.equal(isKvConnectUrl("./data/http.kv"), false);
  assert.equal(isKvConnectUrl("https.kv"), false);
  assert.equal(isKvConnectUrl(":memory:"), false);
});

Deno.test("describeKvLocation() never shows a URL's credentials or query", () => {
  const described = describeKvLocation({
    kind: "kv-connect",
    path: "https://user:pass@kv.example.com/db/connect?token=abc#x",
  });
  assert.equal(described, "https://kv.example.com/db/connect");
  assert.equal(describeKvLocation({ kind: "file", path: "./data/a.kv" }), "./data/a.kv");
  assert.equal(
    describeKvLocation({ kind: "deploy", path: undefined }),
    "the Deno Deploy app's database",
  );
});

Deno.test("kvOpenFailureReason() says which KV_PATH to set instead of Deno's --allow-write advice", () => {
  const file = (path: string): KvLocation => ({ kind: "file", path });
  const denied = new Deno.errors.NotCapable(
    'Requires write access to "/tmp/kv", run again with the --allow-write flag',
  );
  assert.equal(
    kvOpenFailureReason(file("/tmp/kv/wa.kv"), { error: denied, isDirectory: false }),
    'KV_PATH "/tmp/kv/wa.kv" is outside the directories this process may write (the tasks and the compiled binary allow "./data" only): set KV_PATH to a file in it, such as "./data/wa-webhook.kv"',
  );
  const notAFile = new Error("unable to open database file: /srv/data/sub");
  for (const path of ["./data/sub", "./data/sub/"]) {
    assert.equal(
      kvOpenFailureReason(file(path), { error: notAFile, isDirectory: true }),
      'KV_PATH "' + path +
        '" is a directory: set it to a file inside it, such as "./data/sub/wa-webhook.kv"',
    );
  }
  // ./data before it exists: Deno asks for write access to "." to create it as a file.
  const parent = new Deno.errors.NotCapable(
    'Requires write access to ".", run again with the --allow-write flag',
  );
  for (const path of ["./data", "data", "data/"]) {
    assert.match(
      kvOpenFailureReason(file(path), { error: parent, isDirectory: false }),
      /^KV_PATH "[^"]+" is a directory: set it to a file inside it, such as "(\.\/)?data\/wa-webhook\.kv"$/,
      path,
    );
  }
  // Other failures keep their own message, and a URL loses its credentials.
  assert.equal(
    kvOpenFailureReason(file("./data/wa.kv"), {
      error: new Error("database is locked"),
      isDirectory: false,
    }),
    "Cannot open Deno KV at ./data/wa.kv: database is locked",
  );
  assert.equal(
    kvOpenFailureReason(
      { kind: "kv-connect", path: "https://u:p@kv.example.com/x?token=t" },
      { error: new Error("Invalid access token"), isDirectory: false },
    ),
    "Cannot open Deno KV at https://kv.example.com/x: Invalid access token",
  );
});

Deno.test("isDenoDeploy() reads DENO_DEPLOYMENT_ID, and an unreadable one is not Deploy", () => {
  assert.equal(DEPLOYMENT_ID_VARIABLE, "DENO_DEPLOYMENT_ID");
  const env = (values: Record<string, string>) => (name: string) => values[name];
  assert.equal(isDenoDeploy(env({ DENO_DEPLOYMENT_ID: "8a1f2c-0" })), true);
  assert.equal(isDenoDeploy(env({})), false);
  assert.equal(isDenoDeploy(env({ DENO_DEPLOYMENT_ID: " " })), false);
  // What main.ts's reader returns when the permission is not granted (the start task's flags).
  assert.equal(isDenoDeploy(() => undefined), false);
});

Deno.test("checksPerAtomicAt() gives a local Deno KV the checks it accepts in one atomic, and KV Connect and Deploy 10", async () => {
  assert.equal(checksPerAtomicAt({ kind: "kv-connect", path: "http://10.0.0.5:4512" }), 10);
  assert.equal(checksPerAtomicAt({ kind: "deploy", path: undefined }), 10);
  assert.equal(KV_CONNECT_CHECKS_PER_ATOMIC, 10);
  const local = checksPerAtomicAt({ kind: "memory", path: ":memory:" });
  assert.equal(checksPerAtomicAt({ kind: "file", path: "./data/wa-webhook.kv" }), local);
  assert.ok(local > KV_CONNECT_CHECKS_PER_ATOMIC, "a local file shares a commit among more jobs");
  const kv = await Deno.openKv(":memory:");
  try {
    const checking = (count: number): Deno.AtomicOperation => {
      const atomic = kv.atomic();
      for (let i = 0; i < count; i++) atomic.check({ key: ["k", i], versionstamp: null });
      return atomic;
    };
    assert.equal((await checking(local).commit()).ok, true, "the runtime accepts that many");
    await assert.rejects(() => checking(local + 1).commit(), /Too many checks/);
  } finally {
    kv.close();
  }
});
