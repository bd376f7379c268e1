#!/usr/bin/env bash
# Run notebooks top to bottom in a Jupyter kernel (what "Run All" does), in fast mode, JOBS at a time, each kernel on
# one torch thread so that the jobs share the cores instead of fighting over them. Pass the slowest first: the wall
# time is then about the slowest notebook's, not the sum. Usage: tools/run_notebooks.sh PYTHON JOBS NOTEBOOK...
set -euo pipefail
python=$1 jobs=$2; shift 2
out=$(mktemp -d)
run_one() {
  local nb=$1 start=$SECONDS log="$out/$(basename "$1").log"
  if QUANTNB_FAST=1 OMP_NUM_THREADS=1 "$python" tools/run_notebook.py "$nb" "$out" >"$log" 2>&1; then
    echo "== ran $nb in $((SECONDS - start))s"
  else
    cat "$log"; echo "!! $nb failed after $((SECONDS - start))s"; return 255  # 255: xargs starts no further notebook
  fi
}
export -f run_one; export python out
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}
