#!/usr/bin/env bash
# Every benchmark this repository reports in docs/benchmarks.md ("Gateway overhead",
# "Gateway control stages", "Embedded model", "Router"), in one run on this machine.
# Writes bench/results/<name>-<time>.md (+ .json) and prints the combined report.
#
#   bash bench/run_all.sh            # ~20 minutes on 2 cores
#   QUICK=1 bash bench/run_all.sh    # smoke run, ~8 minutes
#
# Needs: .venv with aiport (pip install -e '.[test]'), wrk (apt-get install -y wrk; the
# Python load generator is used without it), Redis on 127.0.0.1:6379 (database 15 is
# emptied and used), LiteLLM in bench/.venv-litellm (made here by setup_litellm.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
stamp="$(date -u +%Y%m%d-%H%M%S)"
out="$here/results"
mkdir -p "$out"

[[ -x "$py" ]] || { echo "missing $py: install aiport first (pip install -e '.[test]')" >&2; exit 1; }
command -v wrk >/dev/null || echo "note: wrk not installed (apt-get install -y wrk); using the Python load generator" >&2
[[ -x "$here/.venv-litellm/bin/litellm" ]] || bash "$here/setup_litellm.sh"
if [[ ! -x "$here/.venv-tools/bin/py-spy" ]]; then
  python3 -m venv "$here/.venv-tools" && "$here/.venv-tools/bin/pip" install --quiet py-spy || true
fi

gateway_args=(--profile)
tokens_args=(--requests 4 --max-tokens 64 --wait-quiet-s 5)
router_args=()
if [[ -n "${QUICK:-}" ]]; then
  gateway_args+=(--quick)
  tokens_args=(--requests 2 --max-tokens 48 --wait-quiet-s 5)
  router_args+=(--repeats 20)
fi

cd "$root"
echo "== gateway (direct / aiport / LiteLLM, plain and with control stages)" >&2
"$py" bench/run_gateway.py "${gateway_args[@]}" --out "$out/gateway-$stamp"
echo "== embedded model tokens/s" >&2
"$py" bench/local_tokens.py "${tokens_args[@]}" --out "$out/local-tokens-$stamp.json" \
  --markdown "$out/local-tokens-$stamp.md"
echo "== router" >&2
"$py" bench/router_eval.py "${router_args[@]}" --markdown "$out/router-$stamp.md" >/dev/null

summary="$out/summary-$stamp.md"
{
  echo "# Benchmark run $stamp (UTC)"
  echo
  echo "Command: \`${QUICK:+QUICK=1 }bash bench/run_all.sh\`"
  echo
  echo "## Gateway overhead and control stages"
  echo
  cat "$out/gateway-$stamp.md"
  echo
  echo "## Embedded model"
  echo
  cat "$out/local-tokens-$stamp.md"
  echo
  echo "## Router"
  echo
  cat "$out/router-$stamp.md"
  for f in "$out/gateway-$stamp-profiles"/*-profile-top.txt; do
    [[ -f "$f" ]] || continue
    echo
    echo "## Profile: $(basename "$f" -profile-top.txt) (py-spy, busy samples)"
    echo
    echo '```'
    head -45 "$f"
    echo '```'
  done
} >"$summary"
cat "$summary"
echo >&2
echo "written: $summary" >&2
