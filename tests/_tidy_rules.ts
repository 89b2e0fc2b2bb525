/**
 * The mechanical style rules of STYLE §1, §4 and §9, as pure functions over source text so that
 * the same checker runs on the real tree and on planted violations (a test of the test).
 *
 * - raft/ stays pure: no clocks, timers, randomness, I/O, console, async/await or Promises.
 * - No line is longer than 100 columns.
 * - No leftover debug output (`console.log`, `console.debug`, `debugger`) in production code.
 * - No function in production code is longer than 70 lines.
 */

/** Names banned inside raft/, each with the reason reported when found. */
export const RAFT_BANNED: readonly { readonly pattern: RegExp; readonly what: string }[] = [
  { pattern: /\bDeno\b/, what: "Deno APIs (I/O)" },
  { pattern: /\bfetch\s*\(/, what: "fetch (I/O)" },
  { pattern: /\b(setTimeout|setInterval|queueMicrotask|setImmediate)\b/, what: "timers" },
  { pattern: /\bDate\b/, what: "the wall clock (Date)" },
  { pattern: /\bperformance\b/, what: "the clock (performance)" },
  { pattern: /\bMath\.random\b/, what: "randomness (Math.random)" },
  { pattern: /\bcrypto\b/, what: "crypto (randomness or I/O)" },
  { pattern: /\bconsole\b/, what: "console output" },
  { pattern: /\basync\b/, what: "async functions" },
  { pattern: /\bawait\b/, what: "await" },
  { pattern: /\bPromise\b/, what: "Promises" },
  { pattern: /\b(process|require)\b/, what: "Node globals (I/O)" },
];

/** The longest allowed line, in columns. */
export const LINE_COLUMNS_MAX = 100;
/** The longest allowed function, in lines. */
export const FUNCTION_LINES_MAX = 70;

/** Checks one file and returns its violations as `path:line: problem` strings. */
export function checkTidy(path: string, source: string): string[] {
  const violations: string[] = [];
  const lines = source.split("\n");
  const code = stripCommentsAndStrings(source).split("\n");
  const isTest = path.endsWith("_test.ts") || path.startsWith("tests/");
  const isProduction = !isTest && !path.endsWith("_bench.ts");
  lines.forEach((line, i) => {
    if (line.length > LINE_COLUMNS_MAX) {
      violations.push(`${path}:${i + 1}: line is ${line.length} columns (max ${LINE_COLUMNS_MAX})`);
    }
  });
  code.forEach((line, i) => {
    if (path.startsWith("raft/") && isProduction) {
      for (const banned of RAFT_BANNED) {
        if (banned.pattern.test(line)) {
          violations.push(`${path}:${i + 1}: raft/ must not use ${banned.what}`);
        }
      }
    }
    if (isProduction && /\bconsole\.(log|debug)\b|\bdebugger\b/.test(line)) {
      violations.push(`${path}:${i + 1}: leftover debug output`);
    }
  });
  if (isProduction) {
    for (const found of findLongFunctions(code)) {
      violations.push(`${path}:${found.line}: function is ${found.length} lines (max 70)`);
    }
  }
  return violations;
}

const FUNCTION_START = new RegExp(
  String.raw`(\bfunction\b[^{]*\{\s*$)|(=>\s*\{\s*$)|` +
    String.raw`(^\s*(?:(?:public|private|protected|static|async|override|get|set)\s+)*` +
    String.raw`#?[A-Za-z_$][\w$]*\s*(?:<[^>]*>)?\s*\([^;]*\)\s*(?::\s*[^=;]+)?\{\s*$)`,
);
const NOT_A_FUNCTION = /^\s*(if|for|while|switch|catch|else|do|try|return|with)\b/;

/** Finds functions whose body spans more than {@linkcode FUNCTION_LINES_MAX} lines. */
export function findLongFunctions(
  code: readonly string[],
): { readonly line: number; readonly length: number }[] {
  const found: { line: number; length: number }[] = [];
  code.forEach((line, start) => {
    if (!FUNCTION_START.test(line) || NOT_A_FUNCTION.test(line)) return;
    let depth = 0;
    for (let i = start; i < code.length; i++) {
      for (const char of code[i] ?? "") {
        if (char === "{") depth++;
        else if (char === "}") depth--;
      }
      if (depth <= 0) {
        const length = i - start + 1;
        if (length > FUNCTION_LINES_MAX) found.push({ line: start + 1, length });
        return;
      }
    }
  });
  return found;
}

/**
 * Blanks out comments and the contents of string literals, keeping line breaks, so that words
 * in messages and docs are not taken for code.
 */
export function stripCommentsAndStrings(source: string): string {
  let out = "";
  let i = 0;
  while (i < source.length) {
    const char = source[i]!;
    const next = source[i + 1];
    if (char === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") i++;
    } else if (char === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, " ");
      i = stop;
    } else if (char === '"' || char === "'" || char === "`") {
      const stop = stringEnd(source, i);
      out += char + source.slice(i + 1, stop - 1).replace(/[^\n]/g, " ") + char;
      i = stop;
    } else {
      out += char;
      i++;
    }
  }
  return out;
}

function stringEnd(source: string, start: number): number {
  const quote = source[start];
  let i = start + 1;
  while (i < source.length) {
    const char = source[i];
    if (char === "\\") i += 2;
    else if (char === quote) return i + 1;
    else if (char === "\n" && quote !== "`") return i;
    else i++;
  }
  return source.length;
}
