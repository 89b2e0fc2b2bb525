/**
 * The console's built assets: ui/mod.ts serves the page, script and stylesheet with the right
 * types and no other path; the committed bundle (ui/bundle/mod.ts) is exactly what a fresh
 * build makes (so it is never stale, and the build is deterministic); the generated module
 * obeys the project's line limit; and a `deno bundle` of ui/mod.ts, run from an empty folder
 * with an empty DENO_DIR and the network denied, still serves the console (every asset is
 * embedded, as in the compiled executable).
 */
import { equal, match, notEqual, ok } from "node:assert/strict";
import { buildConsole, BUNDLE_MODULE_PATH, minifyCss } from "../ui/build.ts";
import {
  APP_JS,
  CONSOLE_ASSET_VERSION,
  CONSOLE_CONTENT_SECURITY_POLICY,
  CONSOLE_PATHS,
  consoleAsset,
} from "../ui/mod.ts";
import { PROJECT_ROOT } from "./_source_files.ts";

Deno.test("consoleAsset() serves the page, the script and the stylesheet", () => {
  const page = consoleAsset("/");
  ok(page !== null);
  equal(page.contentType, "text/html; charset=utf-8");
  ok(page.body.includes(`<script type="module" src="/app.js?v=${CONSOLE_ASSET_VERSION}">`));
  ok(page.body.includes(`href="/app.css?v=${CONSOLE_ASSET_VERSION}"`));
  equal(consoleAsset("/index.html")?.body, page.body);
  equal(page.headers["content-security-policy"], CONSOLE_CONTENT_SECURITY_POLICY);
  equal(page.headers["content-type"], page.contentType);
  const script = consoleAsset("/app.js");
  equal(script?.contentType, "text/javascript; charset=utf-8");
  ok((script?.body.length ?? 0) > 10_000);
  equal(script?.body, APP_JS);
  const style = consoleAsset("/app.css");
  equal(style?.contentType, "text/css; charset=utf-8");
  ok(style?.body.includes("prefers-color-scheme: dark"));
  equal(consoleAsset("/app.js.map"), null);
  equal(consoleAsset("/../deno.json"), null);
  equal(consoleAsset("/v1/cluster/status"), null);
  equal(CONSOLE_PATHS.length, 4);
});

Deno.test("the committed console bundle is what a fresh build makes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-ui-test-" });
  try {
    const outFile = `${dir}/mod.ts`;
    const built = await buildConsole({ projectRoot: PROJECT_ROOT, outFile });
    const committed = await Deno.readTextFile(`${PROJECT_ROOT}${BUNDLE_MODULE_PATH}`);
    equal(await Deno.readTextFile(outFile), built.moduleText);
    ok(
      committed === built.moduleText,
      `${BUNDLE_MODULE_PATH} is stale: run "deno task build:ui" and commit the result`,
    );
    for (const [i, line] of built.moduleText.split("\n").entries()) {
      ok(line.length <= 100, `generated line ${i + 1} is ${line.length} columns`);
    }
    ok(!built.moduleText.includes(PROJECT_ROOT), "the bundle holds no local paths");
    ok(!built.moduleText.includes("sourceMappingURL"), "the bundle has no source map link");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("minifyCss() drops comments and spare whitespace only", () => {
  const css = "/* note */\n.a > .b ,\n.c {\n  color: red;\n  margin: calc(1px - 2px);\n}\n";
  equal(minifyCss(css), ".a>.b,.c{color: red;margin: calc(1px - 2px)}");
  notEqual(minifyCss(".a:hover {}"), ".a :hover{}");
});

Deno.test("the console is served by a bundle run offline from an empty folder", async () => {
  const work = await Deno.makeTempDir({ prefix: "aspen-ui-offline-" });
  try {
    const entry = `${work}/entry.ts`;
    await Deno.writeTextFile(
      entry,
      `import { consoleAsset } from ${JSON.stringify(`${PROJECT_ROOT}ui/mod.ts`)};\n` +
        `const paths = ["/", "/app.js", "/app.css"];\n` +
        `console.log(paths.map((p) => consoleAsset(p)?.body.length ?? -1).join(" "));\n`,
    );
    const bundle = `${work}/empty/console.bundle.js`;
    await Deno.mkdir(`${work}/empty/deno-dir`, { recursive: true });
    const built = await deno(["bundle", "--platform", "deno", "-o", bundle, entry], PROJECT_ROOT);
    equal(built.code, 0, built.stderr);
    const run = await deno(["run", "--deny-net", "--deny-read", bundle], `${work}/empty`, {
      DENO_DIR: `${work}/empty/deno-dir`,
    });
    equal(run.code, 0, run.stderr);
    const sizes = run.stdout.trim().split(" ").map(Number);
    equal(sizes[0], consoleAsset("/")!.body.length);
    equal(sizes[1], consoleAsset("/app.js")!.body.length);
    equal(sizes[2], consoleAsset("/app.css")!.body.length);
    match(run.stdout, /^\d+ \d+ \d+\n$/);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

async function deno(args: string[], cwd: string, env: Record<string, string> = {}) {
  const output = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}
