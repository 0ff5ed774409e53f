#!/usr/bin/env bash
# The checks that need a CUDA GPU, on one GPU in under 8 minutes (sized for an H200):
#
#   examples/gpu_check.sh                              # every section, in this order
#   SECTIONS="bench timm" examples/gpu_check.sh        # some of: tests bench timm leaderboard compile
#   SECTIONS=compile BUDGET_S=0 examples/gpu_check.sh  # every --compile run, however long it takes
#
#   tests        the GPU-only tests (pytest -m gpu tests/test_gpu_check.py): CUDA memory in a bench
#                result, bf16 / fp16 autocast reaching the model, pinned loader memory, OOM halving.
#   bench        bench/run.py --mode bench (synthetic ImageNet inputs, bf16, batch 256) for mixer-s16,
#                gmlp-s, resmlp-s12, vit-s, mixer-b16, gmlp-b, resmlp-b24 and vit-b: one result JSON
#                each in $GPU_CHECK_OUT/bench/eager/ and a table of them.
#   timm         bench/timm_compare.py: the same models, batch and precision against timm's own models
#                timed as timm's benchmark.py does, in interleaved rounds; per model ours and timm's
#                samples/s, the ratio ours / timm's and our MFU, in $GPU_CHECK_OUT/timm_compare.{txt,json}.
#   leaderboard  sweeps/gpu.toml: the four minis on Fashion-MNIST, 3 epochs, 3 seeds, into results/gpu/,
#                then the pages in leaderboard/pages/gpu/.
#   compile      the bench runs again with --compile, into $GPU_CHECK_OUT/bench/compile/, S sizes
#                first. Compiling is the slow part (about a minute a model), so a run starts only while
#                the time budget lasts (BUDGET_S seconds since the start, default 450; 0: no limit);
#                the runs left out are named with the command that runs them.
#
# Settings from the environment: GPU_CHECK_OUT (runs/gpu-check), SECTIONS, MODELS and COMPILE_MODELS
# (family:size ...), BATCH (256), PRECISION (bf16), BUDGET_S (450), PYTHON (python).
# $GPU_CHECK_OUT/gpu_check.log holds all output. Without a CUDA GPU
# the script exits 2 at once, saying so in one sentence; it exits 1 when a section failed (the
# sections after it still run) and 0 otherwise.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python}
OUT=${GPU_CHECK_OUT:-runs/gpu-check}
BUDGET_S=${BUDGET_S:-450}
SECTIONS=${SECTIONS:-tests bench timm leaderboard compile}
BATCH=${BATCH:-256}
PRECISION=${PRECISION:-bf16}
read -r -a MODELS <<< "${MODELS:-mixer:s16 gmlp:s resmlp:s12 vit:s mixer:b16 gmlp:b resmlp:b24 vit:b}"
read -r -a COMPILE_MODELS <<< "${COMPILE_MODELS:-${MODELS[*]}}"
# Shorter measurements than bench/run.py's defaults (5 warm-up, 20 x 5 timed steps, 100 latency samples).
MEASURE=(--bench-warmup-steps 5 --bench-steps 10 --bench-repeats 3 --latency-samples 20)

no_gpu() {
    echo "error: examples/gpu_check.sh needs a CUDA GPU, and $1; run it on a machine with one." >&2
    exit 2
}
command -v nvidia-smi > /dev/null 2>&1 || no_gpu "nvidia-smi is not installed here"
nvidia-smi -L > /dev/null 2>&1 || no_gpu "nvidia-smi finds none here"
"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null \
    || no_gpu "torch sees none here (torch.cuda.is_available() is False, or $PYTHON cannot import torch)"

mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1

FAILED=()
say() { printf '\n== [%ds] %s\n' "$SECONDS" "$*"; }
show() { echo "+ $*"; "$@"; }
wanted() { [[ " $SECTIONS " == *" $1 "* ]]; }
# Runs a section; a failure is recorded and the next section still runs. (Inside a function called
# from `if`, bash ignores set -e: the sections chain their commands with && and ||.)
section() {
    local name=$1 rc=0
    shift
    say "$name"
    "$@" || rc=$?
    if ((rc != 0)); then
        FAILED+=("$name (exit $rc)")
        echo "!! $name failed (exit $rc)"
    fi
}

bench_run() {  # time limit in seconds (0: none), family:size, output folder, extra flags...
    local limit=$1 pair=$2 dir=$3
    shift 3
    show timeout -k 10 "$limit" "$PYTHON" -m bench.run --task imagenet --model "${pair%%:*}" --size "${pair##*:}" \
        --mode bench --precision "$PRECISION" --batch-size "$BATCH" "${MEASURE[@]}" --output-dir "$dir" --overwrite "$@"
}

summarize() {  # a table of the bench results in a folder
    "$PYTHON" - "$1" << 'EOF'
import json, sys
from pathlib import Path
rows = [("model", "status", "batch", "infer/s", "train/s", "MFU infer", "MFU train", "train peak MB")]
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    if "schema_version" not in r:
        continue
    t, m, mem = r.get("throughput") or {}, r.get("mfu") or {}, r.get("memory") or {}
    fmt = lambda v, f: "-" if v is None else format(v, f)
    rows.append((f"{r['model']}-{r['size']}", r["status"], fmt(t.get("batch_size"), "d"),
                 fmt(t.get("infer_samples_per_s"), ".1f"), fmt(t.get("train_samples_per_s"), ".1f"),
                 fmt(m.get("infer"), ".3f"), fmt(m.get("train"), ".3f"), fmt(mem.get("train_peak_mb"), ".0f")))
if len(rows) == 1:
    sys.exit(print(f"(no results in {sys.argv[1]})"))
widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
for row in rows:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
EOF
}

tests_section() {
    show "$PYTHON" -m pytest -q -m gpu tests/test_gpu_check.py
}

bench_section() {
    local pair rc=0
    for pair in "${MODELS[@]}"; do
        bench_run 300 "$pair" "$OUT/bench/eager" || rc=$?
    done
    summarize "$OUT/bench/eager" || rc=$?
    return "$rc"
}

timm_section() {
    local names=() pair
    for pair in "${MODELS[@]}"; do names+=("${pair%%:*}-${pair##*:}"); done
    show "$PYTHON" -m bench.timm_compare --models "${names[@]}" --precision "$PRECISION" --batch-size "$BATCH" \
        --rounds 2 --warmup 5 --steps 10 --repeats 3 --latency-samples 20 --json "$OUT/timm_compare.json" \
        | tee "$OUT/timm_compare.txt"
}

leaderboard_section() {
    "$PYTHON" -c 'import sys; from pathlib import Path; from bench.install_data import PACKAGES
sys.exit(0 if Path(PACKAGES["dataset-fashion-mnist"][0]).exists() else 1)' \
        || show "$PYTHON" -m bench.install_data \
        || return
    show "$PYTHON" -m bench.sweep sweeps/gpu.toml --jobs 4 --progress-every 60 \
        && show "$PYTHON" -m leaderboard results/gpu --out leaderboard/pages/gpu
}

compile_section() {
    # Compiling takes longer than measuring: a run starts only if the previous one's time (half as
    # much again from an S size to a B one) still fits in the budget, and is stopped when it ends.
    local i pair next left took run_rc rc=0 estimate=${COMPILE_ESTIMATE_S:-60}
    local skipped=()
    for i in "${!COMPILE_MODELS[@]}"; do
        pair=${COMPILE_MODELS[$i]}
        left=$((BUDGET_S - SECONDS))
        if ((BUDGET_S > 0 && left < estimate)); then
            skipped=("${COMPILE_MODELS[@]:$i}")
            break
        fi
        took=$SECONDS run_rc=0
        bench_run "$((BUDGET_S > 0 ? left : 0))" "$pair" "$OUT/bench/compile" --compile || run_rc=$?
        took=$((SECONDS - took))
        if ((run_rc == 124 || run_rc == 137)); then
            echo "$pair --compile was stopped at the end of the budget (not counted as a failure)."
            skipped=("${COMPILE_MODELS[@]:$i}")
            break
        fi
        ((run_rc == 0)) || rc=$run_rc
        next=${COMPILE_MODELS[$((i + 1))]:-}
        estimate=$took
        if [[ ${pair##*:} != b* && ${next##*:} == b* ]]; then estimate=$((took * 3 / 2)); fi
    done
    summarize "$OUT/bench/compile" || rc=$?
    if ((${#skipped[@]})); then
        echo "Not compiled within the budget of ${BUDGET_S}s: ${skipped[*]}. Run them with:"
        echo "  SECTIONS=compile COMPILE_MODELS=\"${skipped[*]}\" BUDGET_S=0 examples/gpu_check.sh"
    fi
    return "$rc"
}

say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1)"
"$PYTHON" -c 'import torch, timm; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, timm {timm.__version__}")'
echo "Sections: $SECTIONS; models: ${MODELS[*]}; batch $BATCH, $PRECISION; budget ${BUDGET_S}s; output in $OUT."

wanted tests && section "tests: the GPU-only tests" tests_section
wanted bench && section "bench: bench/run.py --mode bench, eager" bench_section
wanted timm && section "timm: our harness against timm's benchmark.py timing" timm_section
wanted leaderboard && section "leaderboard: the minis on Fashion-MNIST, 3 seeds" leaderboard_section
wanted compile && section "compile: bench/run.py --mode bench --compile, while the budget lasts" compile_section

say "done"
echo "Outputs: $OUT/ (bench/, timm_compare.txt, timm_compare.json, gpu_check.log), results/gpu/, leaderboard/pages/gpu/."
if ((${#FAILED[@]})); then
    printf 'Failed: %s\n' "${FAILED[@]}"
    exit 1
fi
