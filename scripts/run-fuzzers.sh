#!/usr/bin/env bash
# run-fuzzers.sh BINDIR SECONDS: replays each target's corpus, then fuzzes it for SECONDS.
set -euo pipefail
bindir=$1
seconds=$2
src=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
for bin in "$bindir"/*_fuzz; do
  name=$(basename "$bin")
  corpus=$(ls -d "$src"/tests/*/fuzz/"${name}"_corpus 2>/dev/null | head -1)
  work=$(mktemp -d)
  if [[ -n $corpus ]]; then cp -r "$corpus"/. "$work"/; fi
  echo "fuzz: $name for ${seconds}s (corpus: ${corpus:-none})"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 "$work" 2>&1 | tail -3
  rm -rf "$work"
done
