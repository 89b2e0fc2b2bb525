import { createRequire } from "node:module";
const t = performance.now();
const mod = Deno.args[0];
await import(mod);
console.log(mod, (performance.now() - t).toFixed(1));
