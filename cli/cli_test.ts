/**
 * The `aspen` CLI in process: dispatch, help for every command listing every flag, strict flag
 * errors naming the flag (exit 2), unavailable commands saying so (exit 2), and
 * `node --print-config` with a config file, env and flags.
 */
import { equal, match } from "node:assert/strict";
import type { CliIo } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import { devTryLines } from "./dev_command.ts";
import { runCli } from "./run_cli.ts";

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const written = new Map<string, string>();

async function run(
  argv: string[],
  options: { env?: Record<string, string>; files?: Record<string, string> } = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    env: options.env ?? {},
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
    readTextFile: (path) => {
      const text = options.files?.[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
        : Promise.resolve(text);
    },
    readFile: (path) => {
      const text = options.files?.[path];
      return text === undefined
        ? Promise.reject(new Deno.errors.NotFound(`No such file: ${path}`))
        : Promise.resolve(new TextEncoder().encode(text));
    },
    writeFile: (path, bytes) => {
      written.set(path, new TextDecoder().decode(bytes));
      return Promise.resolve();
    },
    nowMs: () => 0,
    monotonicMs: () => 0,
    shutdown: new AbortController().signal,
    selfCommand: ["aspen"],
    randomBytes: (count) => crypto.getRandomValues(new Uint8Array(count)),
    writeNewFile: (path, text, { overwrite }) => {
      if (written.has(path) && !overwrite) return Promise.resolve(false);
      written.set(path, text);
      return Promise.resolve(true);
    },
    versions: { aspen: "9.9.9", deno: "2.9.6" },
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}

Deno.test("aspen help lists every command", async () => {
  const result = await run(["help"]);
  equal(result.code, 0);
  for (const command of COMMANDS) match(result.stdout, new RegExp(`\\n  ${command.name} `));
});

Deno.test("aspen <command> --help lists every flag of the command", async (t) => {
  for (const command of COMMANDS) {
    await t.step(command.name, async () => {
      const result = await run([command.name, "--help"]);
      equal(result.code, 0);
      for (const flag of Object.keys(command.flags)) match(result.stdout, new RegExp(`--${flag}`));
      const viaHelp = await run(["help", command.name]);
      equal(viaHelp.stdout, result.stdout);
    });
  }
});

Deno.test("aspen version prints the version", async () => {
  const result = await run(["version"]);
  equal(result.stdout, "aspen 9.9.9 (deno 2.9.6)\n");
});

Deno.test("usage errors name the problem and exit 2", async (t) => {
  const cases: [string[], RegExp][] = [
    [["frobnicate"], /unknown command "frobnicate"/],
    [["node", "--nope"], /aspen node: unknown flag --nope \(see 'aspen node --help'\)/],
    [["node", "--node-id"], /flag --node-id needs a value/],
    [["version", "extra"], /unexpected argument "extra"/],
    [["help", "nothing"], /unknown command "nothing"/],
    [["dev", "--nodes"], /flag --nodes needs a value/],
    [["dev", "--add-node", "--nodes", "4"], /flag --nodes does not go with --add-node/],
    [["cluster", "remove-node"], /<id>/],
    [["cluster", "remove-node", "x"], /<id> is "x"; expected a node id/],
    [["cluster", "replace-node", "0"], /<id> is "0"; expected a node id/],
    [["cluster", "remove-node", "4", "5"], /unexpected argument "5"/],
  ];
  for (const [argv, expected] of cases) {
    await t.step(argv.join(" "), async () => {
      const result = await run(argv);
      equal(result.code, 2);
      match(result.stderr, expected);
    });
  }
});

Deno.test("aspen dev --add-node names the folder that holds no dev cluster", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const result = await run(["dev", "--add-node", "--dir", dir]);
    equal(result.code === 0, false);
    match(result.stderr, new RegExp(`--dir "${dir}" holds no dev cluster`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aspen node --print-config merges file, env and flags", async () => {
  const files = { "x.toml": '[node]\nid = 7\ndata_dir = "d"\n[log]\nformat = "json"' };
  const result = await run(["node", "--print-config", "--config", "x.toml", "--log-level=debug"], {
    env: { ASPEN_DATA_DIR: "from-env" },
    files,
  });
  equal(result.code, 0);
  match(result.stdout, /\[node\]\nid = 7\ndata_dir = "from-env"/);
  match(result.stdout, /level = "debug"\nformat = "json"/);
});

Deno.test("aspen node reports a bad config value and a missing file by name", async () => {
  const bad = await run(["node", "--print-config", "--config", "x.toml"], {
    files: { "x.toml": '[log]\nlevel = "chatty"' },
  });
  equal(bad.code, 2);
  match(bad.stderr, /log\.level in "x\.toml" is "chatty" but must be one of debug/);
  const missing = await run(["node", "--print-config"], { env: { ASPEN_CONFIG: "nope.toml" } });
  equal(missing.code, 2);
  match(missing.stderr, /Cannot read config file "nope\.toml"/);
});

Deno.test("boolean settings can be turned off with --no-", async () => {
  const result = await run(["node", "--print-config", "--no-auth-enabled"]);
  match(result.stdout, /\[auth\]\nenabled = false/);
});

Deno.test("client commands name the missing argument or misplaced flag", async (t) => {
  const cases: [string[], RegExp][] = [
    [["kv"], /aspen kv: missing action; expected get, put, del, scan, txn or watch/],
    [["kv", "frob"], /unknown action "frob"/],
    [["kv", "get"], /missing <key>: usage is aspen kv get <key>/],
    [["kv", "put", "a"], /missing <value>/],
    [["kv", "get", "a", "--lease", "3"], /flag --lease does not apply to kv get/],
    [["kv", "put", "a", "b", "--lease", "x"], /flag --lease is "x" but must be an integer/],
    [["kv", "scan", "--prefix", "a", "--start", "b"], /--prefix cannot be used with --start/],
    [["kv", "scan", "--limit", "0"], /flag --limit is "0"/],
    [["kv", "txn"], /kv txn needs --file FILE/],
    [["txn"], /aspen txn: missing action; expected status/],
    [["txn", "show", "x"], /unknown action "show"; expected status/],
    [["txn", "status"], /missing <id>: usage is aspen txn status <id>/],
    [["kv", "put", "a", "b", "--value-file", "f"], /give <value> or --value-file, not both/],
    [["kv", "put", "a", "--value-file", "f", "--base64"], /--base64 applies to <value>/],
    [["kv", "put", "a", "not base64", "--base64"], /with --base64, <value> must be padded/],
    [["kv", "get", "a", "--base64", "--out", "f"], /give --base64 or --out, not both/],
    [["kv", "del", "a", "--out", "f"], /flag --out does not apply to kv del/],
    [["kv", "get", "a", "--endpoints", "ftp://x"], /flag --endpoints has "ftp:\/\/x"/],
    [["shard", "transfer-leader", "x", "2"], /<shard> is "x"/],
    [["cluster", "init"], /cluster init needs --out FILE/],
    [["cluster", "init", "--out", "c.json", "--ttl", "1h"], /flag --ttl does not apply to/],
    [["cluster", "status", "extra"], /unexpected argument "extra"/],
    [["cluster", "token"], /missing token action; expected create, list or revoke/],
    [["cluster", "token", "create"], /cluster token create needs --role root\|read/],
    [["cluster", "token", "create", "--role", "admin"], /flag --role is "admin"/],
    [["cluster", "token", "create", "--role", "read", "--ttl", "1y"], /flag --ttl is "1y"/],
    [["cluster", "token", "create", "--role", "read", "--ttl", "0s"], /flag --ttl is "0s"/],
    [["cluster", "token", "list", "--role", "read"], /flag --role does not apply to cluster/],
    [["cluster", "token", "revoke"], /missing <id>: usage is aspen cluster token revoke <id>/],
    [["cluster", "token", "revoke", "xyz"], /<id> is "xyz"; expected a token id/],
    [["bench"], /<workload> must be one of put, get, mixed, cas, txn, scan, read-txn/],
    [["bench", "cas", "--shards-per-txn", "0"], /--shards-per-txn is "0" but must be an integer/],
    [["bench", "txn", "--keys-per-txn", "65"], /--keys-per-txn is "65" but must be an integer/],
    [["bench", "cas", "--shards-per-txn", "3", "--keys-per-txn", "2"], /must be at least/],
    [["bench", "put", "--api", "consul"], /flag --api is "consul"; expected aspen or etcd/],
    [["bench", "scan", "--keys-per-txn", "2"], /apply to cas, txn and read-txn, not scan/],
    [["bench", "put", "--warmup", "x"], /--warmup is "x"/],
    [["bench", "mixed", "--read-ratio", "2"], /--read-ratio is "2"/],
    [["bench", "get", "--consistency", "eventual"], /--consistency is "eventual"/],
    [["bench", "put", "--clients", "0"], /--clients is "0"/],
  ];
  for (const [argv, expected] of cases) {
    await t.step(argv.join(" "), async () => {
      const result = await run(argv);
      equal(result.code, 2, result.stderr);
      match(result.stderr, expected);
    });
  }
});

Deno.test("a client command reports an unreachable cluster and exits 1", async () => {
  const result = await run(["kv", "get", "a", "--endpoints", "http://127.0.0.1:1"]);
  equal(result.code, 1);
  match(result.stderr, /aspen kv: unreachable: Cannot reach http:\/\/127\.0\.0\.1:1: /);
});

Deno.test("aspen cluster init writes credentials once and prints the tokens", async () => {
  const first = await run(["cluster", "init", "--out", "c.json"]);
  equal(first.code, 0, first.stderr);
  match(first.stdout, /Root token \(shown once\): +aspen_/);
  const stored = written.get("c.json") ?? "";
  const rootToken = /Root token \(shown once\): +(\S+)/.exec(first.stdout)?.[1] ?? "";
  equal(stored.includes(rootToken), false, "the token itself must not be stored");
  const again = await run(["cluster", "init", "--out", "c.json"]);
  equal(again.code, 2);
  match(again.stderr, /--out "c\.json" exists; pass --force/);
  const forced = await run(["cluster", "init", "--out", "c.json", "--force", "--json"]);
  equal(forced.code, 0);
  equal(typeof JSON.parse(forced.stdout).rootToken, "string");
});

Deno.test("aspen dev's banner names a command that works where it was started", () => {
  const fromSource = devTryLines(["/usr/bin/deno", "run", "-A", "/src/main.ts"]);
  match(fromSource, /Try: +deno task aspen kv put hello world +\(from this folder\)\n/);
  match(fromSource, /deno install -A -g -n aspen --config deno\.json main\.ts/);
  equal(devTryLines(["/opt/aspen"]), "  Try:         /opt/aspen kv put hello world\n");
});
