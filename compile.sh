#!/usr/bin/env bash
# Builds the single-file `aspen` executable into dist/aspen. All logic lives in deno.json's
# `compile` task (console assets first, then `deno compile`); this wrapper only runs it.
# `deno compile` downloads its runtime (denort) unless DENO_DIR already has it or DENORT_BIN
# names a local copy, which deno honours.
set -euo pipefail
cd "$(dirname "$0")"
exec deno task compile "$@"
