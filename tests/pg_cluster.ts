/**
 * A real PostgreSQL server for the tests: `TEST_DATABASE_URL` when it is set (a server the caller
 * runs, reached as a user that may create databases), else a throwaway cluster this module starts
 * once per test process from Debian's `postgresql` package (`initdb` and `pg_ctl` from
 * `/usr/lib/postgresql/<version>/bin`), as the `postgres` user (PostgreSQL refuses to run as root)
 * in a temp directory on a free loopback port. Every test file of one `deno test` run shares it
 * (one process, one module instance); a detached watcher stops it and removes its directory once
 * the test process has exited, so no test leaks a process or a socket.
 *
 * Each test gets a database of its own ({@linkcode createTestDatabase}), copied from a template
 * the store's migrations already ran on, so a test costs one `CREATE DATABASE`.
 *
 * When PostgreSQL is missing, every test that needs it fails with a message saying how to install
 * it: never a skip, so CI cannot pass without having run them.
 *
 * @module
 */
import postgres from "postgres";
import { migrate, STORE_TABLES } from "../src/store/pg/migrations.ts";
import { connectPg } from "../src/store/pg/client.ts";

/** Where Debian puts each major version's server programs. */
const PG_LIB_DIR = "/usr/lib/postgresql";
/** The cluster has this long to accept connections after `pg_ctl start` (it waits with `-w`). */
const START_TIMEOUT_S = 30;
/** The template database, migrated once per server: tests copy it. */
const TEMPLATE_DATABASE = "wa_test_template";

/** A server: its admin URL, and how to stop and start it (a cluster of ours only). */
export interface PgServer {
  /** A URL with the right to create databases, ending in `/postgres`. */
  adminUrl: string;
  /** `pg_ctl` of our own cluster; absent for `TEST_DATABASE_URL`. */
  cluster?: PgCluster;
}

/** A cluster this module started: stopping and starting it, for the fault tests. */
export interface PgCluster {
  dir: string;
  port: number;
  /** `pg_ctl stop` with `mode` (`fast` closes connections; `immediate` is a crash). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** `pg_ctl start`, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (as a crash would) and removes its directory. */
  destroy(): Promise<void>;
}

let _server: Promise<PgServer> | undefined;
let _databases = 0;

/** The shared server of this test process, started on first use. */
export function pgServer(): Promise<PgServer> {
  _server ??= _startServer();
  return _server;
}

/** A fresh database for one test: its URL, and `drop()` to let go of it when done. */
export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Migrated databases let go of and emptied, for the next tests. */
const _free: string[] = [];

/**
 * A migrated database with no rows, for one test: an emptied one a test let go of, or a copy of
 * the template (`CREATE DATABASE` took 0.2 s a test; emptying takes a tenth of that). With
 * `isEmpty`, a new database without even the schema, dropped when let go of. Fails with how to
 * install PostgreSQL when it is missing.
 */
export async function createTestDatabase(
  { isEmpty = false }: { isEmpty?: boolean } = {},
): Promise<TestDatabase> {
  const server = await pgServer();
  const reused = isEmpty ? undefined : _free.pop();
  const name = reused ?? `wa_test_${Deno.pid}_${++_databases}`;
  if (!reused) {
    const template = isEmpty ? "template0" : TEMPLATE_DATABASE;
    await _admin(
      server.adminUrl,
      (sql) => sql.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`),
    );
  }
  const url = _withDatabase(server.adminUrl, name);
  let isDropped = false;
  return {
    url,
    async drop() {
      if (isDropped) return;
      isDropped = true;
      if (isEmpty) {
        await _admin(server.adminUrl, (sql) => sql.unsafe(`DROP DATABASE ${name} WITH (FORCE)`));
        return;
      }
      // DELETE, not TRUNCATE: a test leaves few rows, and TRUNCATE rewrote every table and index.
      await _admin(
        url,
        (sql) => sql.unsafe(STORE_TABLES.map((t) => `DELETE FROM ${t};`).join("\n")),
      );
      _free.push(name);
    },
  };
}

async function _startServer(): Promise<PgServer> {
  const given = Deno.env.get("TEST_DATABASE_URL")?.trim();
  const server: PgServer = given ? { adminUrl: given } : await startCluster();
  await _admin(server.adminUrl, async (sql) => {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await sql.unsafe(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  });
  const template = connectPg(_withDatabase(server.adminUrl, TEMPLATE_DATABASE), { poolSize: 1 });
  try {
    await migrate(template);
  } finally {
    await template.end();
  }
  return server;
}

/**
 * Starts a throwaway cluster. `fsync` stays off for the tests; the benchmark turns it on, to
 * measure what a real server does.
 */
export async function startCluster(
  { fsync: isFsync = false }: { fsync?: boolean } = {},
): Promise<PgServer> {
  const bin = await _serverBinDir();
  const dir = await Deno.makeTempDir({ prefix: "wa-webhook-pg-" });
  if (_isRoot()) await _run("chown", ["postgres:postgres", dir]);
  await _asPostgres(`${bin}/initdb`, [
    "-D",
    `${dir}/data`,
    "-U",
    "postgres",
    "-A",
    "trust",
    "--no-sync",
    "-E",
    "UTF8",
  ]);
  const port = _freePort();
  const fsync = isFsync ? "on" : "off";
  const cluster: Omit<PgCluster, "destroy"> & Partial<Pick<PgCluster, "destroy">> = {
    dir,
    port,
    stop: (mode = "fast") =>
      _asPostgres(`${bin}/pg_ctl`, ["-D", `${dir}/data`, "-m", mode, "stop"]),
    start: () =>
      _asPostgres(`${bin}/pg_ctl`, [
        "-D",
        `${dir}/data`,
        "-l",
        `${dir}/server.log`,
        "-w",
        "-t",
        String(START_TIMEOUT_S),
        // Loopback only; the socket in our directory; room for three services and the tests.
        // No fsync: a throwaway cluster that outlives no machine crash; a process crash (the
        // fault tests stop it with "immediate") loses nothing without it. Copying the template
        // for each test took 0.6 s with it.
        "-o",
        `-p ${port} -h 127.0.0.1 -k ${dir} -c max_connections=200 -c fsync=${fsync}`,
        "start",
      ]),
  };
  cluster.destroy = async () => {
    await cluster.stop("immediate").catch(() => {}); // already stopped
    await Deno.remove(dir, { recursive: true });
  };
  await cluster.start();
  // Stops the cluster and removes it once this process is gone, however it ends.
  const watcher = `while kill -0 ${Deno.pid} 2>/dev/null; do sleep 1; done; ` +
    `${
      _isRoot() ? "runuser -u postgres -- " : ""
    }${bin}/pg_ctl -D ${dir}/data -m immediate stop; ` +
    `rm -rf ${dir}`;
  await _run("bash", ["-c", `setsid bash -c '${watcher}' </dev/null >/dev/null 2>&1 &`]);
  return {
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    cluster: cluster as PgCluster,
  };
}

/** The newest installed version's `bin` directory; throws how to install it when there is none. */
async function _serverBinDir(): Promise<string> {
  const versions: number[] = [];
  try {
    for await (const entry of Deno.readDir(PG_LIB_DIR)) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch { /* not installed */ }
  for (const version of versions.sort((a, b) => b - a)) {
    const bin = `${PG_LIB_DIR}/${version}/bin`;
    try {
      await Deno.stat(`${bin}/initdb`);
      return bin;
    } catch { /* a client-only install */ }
  }
  throw new Error(
    `Cannot run the PostgreSQL tests: no server in "${PG_LIB_DIR}/*/bin". Install it ` +
      `("apt-get install -y postgresql"; .ci/run does) or set TEST_DATABASE_URL to a server's URL`,
  );
}

/**
 * Runs `program` as the `postgres` user when this process is root (PostgreSQL refuses to run as
 * root), else as this user; throws with its output when it fails.
 */
function _asPostgres(program: string, args: string[]): Promise<void> {
  return _isRoot()
    ? _run("runuser", ["-u", "postgres", "--", program, ...args])
    : _run(program, args);
}

function _isRoot(): boolean {
  return Deno.uid() === 0;
}

async function _run(program: string, args: string[]): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
    throw new Error(`"${program} ${args.join(" ")}" exited with ${code}:\n${text}`);
  }
}

/** A loopback port free right now. */
function _freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** `url` with its database replaced by `name`. */
function _withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** Runs `work` on a short-lived admin connection. */
async function _admin(url: string, work: (sql: postgres.Sql) => Promise<unknown>): Promise<void> {
  const sql = connectPg(url, { poolSize: 1 });
  try {
    await work(sql);
  } finally {
    await sql.end();
  }
}
