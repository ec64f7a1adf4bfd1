#!/usr/bin/env bash
# GPU validation (issue 12, item 6): on a CUDA machine, run the tests marked `gpu` and the
# benchmarks, then print one markdown table of what was measured. Each section below appends
# rows "| measurement | value |" to $ROWS; add a section for each new measurement.
#
#   bash benchmarks/gpu.sh        # from the repository root, with .venv holding thinkscope[gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: no CUDA device')"
WORK=$(mktemp -d)
ROWS="$WORK/rows.md"
: > "$ROWS"

# -- tests marked gpu -------------------------------------------------------------------------
$PY -m pytest -m gpu -q -p no:cacheprovider tests | tee "$WORK/tests.txt" || true
echo "| gpu tests | $(tail -n 1 "$WORK/tests.txt") |" >> "$ROWS"

# -- lens (benchmarks/lens.py): share of the bf16 matmul peak, exactness, scoring tokens/s ----
# bf16 (the CUDA default) and fp32 models; (a) is the float64 per-layer loop on CUDA.
for DT in bfloat16 float32; do
  $PY benchmarks/lens.py --device cuda --dtype $DT --memory-tokens 0 | tee "$WORK/lens-$DT.txt"
  awk -v dt=$DT '
    /^forward pass/ { fwd = $(NF-3) + 0; T = $6 + 0 }
    /^\((b|c|d)\) / && NF >= 6 && $NF ~ /^[0-9.]+$/ {
      name = $0; sub(/ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+$/, "", name)
      print "| lens " dt ", " name " | " $(NF-4) " s, " $NF "% of bf16 peak |" }
    /^\(b\) engine/ { b = $(NF-4) + 0 }
    /max \|JSD/ { match($0, /max \|JSD \(b\) - \(a\)\| = [^;]+/)
      print "| lens " dt ", max abs JSD error vs float64 | " substr($0, RSTART + 22, RLENGTH - 22) " |" }
    /^bf16 matmul peak/ { print "| " $0 " | |" }
    END { if (b > 0) printf "| scoring " dt " (forward + lens profile), tokens/s | %.0f |\n", T / (fwd + b) }
  ' "$WORK/lens-$DT.txt" >> "$ROWS"
done

# -- generation: thinkscope's sampler, HF generate and vLLM, tokens/s (benchmarks/generate.py) --
VLLM=$($PY -c "import importlib.util as u; print('--vllm' if u.find_spec('vllm') else '')")
$PY benchmarks/generate.py --device cuda --batches 1,16,64 --max-new-tokens 128 $VLLM \
  | tee "$WORK/generate.txt"
awk '$1 ~ /^[0-9]+$/ {
  row = "| generation tok/s, batch " $1 " | thinkscope " $2 ", HF generate " $3
  if ($5 == "vllm") row = row ", vLLM " $6
  print row " |" }' "$WORK/generate.txt" >> "$ROWS"

echo
echo "| measurement | value |"
echo "| --- | --- |"
cat "$ROWS"
