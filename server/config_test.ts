/**
 * Configuration: precedence (flags > environment > file > defaults), every kind of bad value
 * named with its source, unknown file keys and sections rejected, cross-setting rules, and a
 * --print-config round trip (printing then loading gives the same config).
 */
import { deepEqual, equal, match, throws } from "node:assert/strict";
import { AspenError } from "../shard/mod.ts";
import { PEERS_MAX } from "../transport/mod.ts";
import { type ConfigSources, formatConfig, loadConfig, shardCount } from "./config.ts";

function sources(partial: Partial<ConfigSources>): ConfigSources {
  return { flags: {}, env: {}, file: null, ...partial };
}

function file(text: string): ConfigSources["file"] {
  return { path: "node.toml", text };
}

Deno.test("loadConfig() gives the documented defaults", () => {
  const config = loadConfig(sources({}));
  equal(config.node.id, 1);
  equal(config.node.peerListen, "127.0.0.1:7001");
  equal(config.node.diskReserveMib, 64);
  equal(config.sharding.enabled, false);
  equal(shardCount(config), 1);
  equal(config.sharding.localShards, null);
  equal(config.auth.enabled, true);
  deepEqual(config.log, { level: "info", format: "text" });
});

Deno.test("loadConfig() applies flags over env over file over defaults", async (t) => {
  const toml = file('[node]\nid = 3\ndata_dir = "from-file"\n[log]\nlevel = "warn"');
  await t.step("file over defaults", () => {
    const config = loadConfig(sources({ file: toml }));
    equal(config.node.id, 3);
    equal(config.node.dataDir, "from-file");
  });
  await t.step("env over file", () => {
    const config = loadConfig(sources({ file: toml, env: { ASPEN_NODE_ID: "4" } }));
    equal(config.node.id, 4);
    equal(config.node.dataDir, "from-file");
  });
  await t.step("flag over env", () => {
    const config = loadConfig(
      sources({ file: toml, env: { ASPEN_NODE_ID: "4" }, flags: { "node-id": "5" } }),
    );
    equal(config.node.id, 5);
    equal(config.log.level, "warn");
  });
});

Deno.test("loadConfig() parses sharding and peers", () => {
  const config = loadConfig(sources({
    file: file(
      "[sharding]\nenabled = true\nnum_shards = 8\nlocal_shards = [0, 5]\n" +
        '[cluster]\npeers = ["1=127.0.0.1:7001", "2=localhost:7002", "3=[::1]:7003"]',
    ),
  }));
  equal(shardCount(config), 8);
  deepEqual(config.sharding.localShards, [0, 5]);
  deepEqual(config.cluster.peers.map((peer) => peer.id), [1, 2, 3]);
  equal(config.cluster.peers[2]?.address, "[::1]:7003");
});

Deno.test("loadConfig() takes bracketed IPv6 listen addresses, port 0 only to listen", () => {
  const config = loadConfig(sources({
    flags: { "peer-listen": "[::1]:7001", "http-listen": "[::1]:0", peers: "1=[::1]:7001" },
  }));
  equal(config.node.peerListen, "[::1]:7001");
  equal(config.node.httpListen, "[::1]:0");
  deepEqual(config.cluster.peers, [{ id: 1, address: "[::1]:7001" }]);
  // A node listening on an ephemeral port lists itself there; nobody dials its own entry.
  const ephemeral = loadConfig(sources({
    flags: { "peer-listen": "127.0.0.1:0", peers: "1=127.0.0.1:0,2=127.0.0.1:7002" },
  }));
  deepEqual(ephemeral.cluster.peers.map((peer) => peer.address), ["127.0.0.1:0", "127.0.0.1:7002"]);
});

Deno.test("loadConfig() rejects bad values, naming source, value and range", async (t) => {
  const cases: [string, Partial<ConfigSources>, RegExp][] = [
    ["node id zero (flag)", { flags: { "node-id": "0" } }, /flag --node-id is "0".*1 to 65535/],
    ["node id text (env)", { env: { ASPEN_NODE_ID: "one" } }, /environment ASPEN_NODE_ID/],
    ["node id float (file)", { file: file("[node]\nid = 1.5") }, /node\.id in "node\.toml"/],
    ["node id string (file)", { file: file('[node]\nid = "1"') }, /node\.id.*integer/],
    ["huge node id", { file: file("[node]\nid = 99999999999999999999") }, /1 to 65535/],
    ["bad address", { flags: { "peer-listen": "localhost" } }, /--peer-listen.*host:port/],
    ["port too big", { flags: { "http-listen": "a:70000" } }, /--http-listen/],
    [
      "unbracketed IPv6 listen address",
      { flags: { "peer-listen": "::1:7001" } },
      /--peer-listen is "::1:7001".*: an IPv6 host must be in brackets, as in "\[::1\]:7000"$/,
    ],
    [
      "peer IPv6 without port",
      { flags: { peers: "2=[::1]" } },
      /--peers is "2=\[::1\]".*id=host:port.*: expected "host:port" but there is no port$/,
    ],
    [
      "peer at port 0 (cannot be dialled)",
      { flags: { peers: "2=[::1]:0" } },
      /peers lists node 2 at "\[::1\]:0": port 0 cannot be dialled/,
    ],
    [
      "peer host with a space",
      { flags: { peers: "2=my host:7002" } },
      /the host "my host" has a character not allowed there$/,
    ],
    [
      "more peers than PEERS_MAX",
      { flags: { peers: Array.from({ length: PEERS_MAX + 1 }, (_, i) => `${i + 1}=h:1`).join() } },
      new RegExp(`at most ${PEERS_MAX} peers`),
    ],
    ["shard count", { flags: { "sharding-num-shards": "5000" } }, /1 to 1024/],
    ["negative reserve", { flags: { "disk-reserve-mib": "-1" } }, /--disk-reserve-mib.*0 to/],
    ["log level", { env: { ASPEN_LOG_LEVEL: "loud" } }, /one of debug, info, warn, error/],
    ["boolean", { env: { ASPEN_SHARDING_ENABLED: "yes" } }, /true or false/],
    ["shard list", { flags: { "local-shards": "0,x" } }, /--local-shards.*shard ids/],
    ["repeated shard", { flags: { "local-shards": "1,1" } }, /each listed once/],
    ["peer form", { flags: { peers: "2@h:1" } }, /--peers is "2@h:1".*id=host:port/],
    ["repeated peer", { flags: { peers: "2=a:1,2=b:2" } }, /each id listed once/],
    ["empty data dir", { flags: { "data-dir": " " } }, /--data-dir.*non-empty/],
    ["unknown section", { file: file("[nodes]\nid = 1") }, /unknown section \[nodes\]/],
    ["unknown key", { file: file("[node]\nidd = 1") }, /unknown key "idd" in \[node\]/],
    ["bad toml", { file: file("[node\nid = 1") }, /Cannot parse config file "node\.toml"/],
    [
      "local shard beyond count",
      { flags: { "local-shards": "2" } },
      /lists shard 2 but the cluster has 1 shard.*sharding is disabled/,
    ],
    [
      "self address mismatch",
      { flags: { peers: "1=127.0.0.1:9999" } },
      /peers lists this node \(1\) at "127\.0\.0\.1:9999"/,
    ],
    ["join without a token", { flags: { join: "http://a:1" } }, /join needs join_token/],
    ["a join token alone", { flags: { "join-token": "t" } }, /join_token is set but join/],
    [
      "join not an HTTP URL",
      { flags: { join: "a:1", "join-token": "t" } },
      /join is "a:1" but must be a member's HTTP URL/,
    ],
    [
      "join with peers",
      { flags: { join: "http://a:1", "join-token": "t", peers: "1=127.0.0.1:7001" } },
      /join and peers exclude each other/,
    ],
  ];
  for (const [name, partial, expected] of cases) {
    await t.step(name, () => {
      throws(() => loadConfig(sources(partial)), (error: unknown) => {
        equal(error instanceof AspenError, true);
        equal((error as AspenError).code, "bad_config");
        match((error as AspenError).message, expected);
        return true;
      });
    });
  }
});

Deno.test("formatConfig() never prints the join token", () => {
  const config = loadConfig(sources({
    flags: { join: "http://127.0.0.1:8001", "join-token": "aspen_secret" },
  }));
  equal(config.cluster.joinToken, "aspen_secret");
  const printed = formatConfig(config);
  match(printed, /join = "http:\/\/127\.0\.0\.1:8001"/);
  equal(printed.includes("aspen_secret"), false);
});

Deno.test("formatConfig() output loads back to the same config", () => {
  const original = loadConfig(sources({
    flags: {
      "node-id": "2",
      "peer-listen": "127.0.0.1:7002",
      "sharding-enabled": "true",
      "local-shards": "1,3",
      peers: "1=127.0.0.1:7001,2=127.0.0.1:7002",
      "log-format": "json",
      "disk-reserve-mib": "0",
    },
  }));
  const reloaded = loadConfig(sources({ file: file(formatConfig(original)) }));
  deepEqual(reloaded, original);
});
