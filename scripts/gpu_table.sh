#!/usr/bin/env bash
# The GPU table of docs/performance.md in one short lease (developers only, not a test): on a
# machine with an NVIDIA GPU, its Vulkan driver and PyTorch with CUDA, from the repository root:
#
#     scripts/gpu_table.sh ZOO OUT [BUDGET_S]
#
# ZOO is a release build with `--features gpu` named vlsm-zoo (built elsewhere from the same
# commit; the profile row runs it through scripts/gpu_check.sh --prebuilt its folder), OUT a
# folder for the logs and tables, BUDGET_S (default 540) the seconds after which no new timing
# starts and the one running is stopped. Unlike scripts/gpu_check.sh (every row, no deadline),
# this runs the rows in the order they matter and keeps what it has when time runs out:
#   1. PyTorch on CUDA, every row, float32 then torch.autocast fp16, one process per group
#      (scripts/bench_torch.py; transformers' CLIPSeg, random weights);
#   2. ours on wgpu: DA-VL batch 32 in a *fresh* process (the first-process compile time: the
#      warm-up steps' seconds are printed), the same again (a second process with the kernel
#      cache and the driver's pipeline cache filled), DA-VL in f16 and bf16, SA-VLC and
#      decoder-only uncached and cached, inference, one DA-VL step under cubecl's profiler
#      (scripts/kernel_profile.sh), then the batch-8 rows.
# Each of our rows gives the process's wall time too (start, kernel compilation, all steps).
# Everything is appended to OUT/log.md as it comes; OUT/torch.md and OUT/ours.md hold the rows.
set -uo pipefail
cd "$(dirname "$0")/.."
zoo=$(realpath "$1")
out=$(realpath "$2")
budget=${3:-540}
started=$(date +%s)
mkdir -p "$out"
log="$out/log.md"
left() { echo $((budget - ($(date +%s) - started))); }
say() { echo "$*" | tee -a "$log"; }
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
    export XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
fi

say "## $(date -u +'%F %T') UTC: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null)"
say "- host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(uname -r)"
say "- ours: $("$zoo" --version); PyTorch: $(python3 -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}, cuDNN {torch.backends.cudnn.version()}")' 2>&1 | tail -1)"

# runs "$@" with at most min(cap, time left) seconds; appends its output to the log
capped() {
    local cap=$1
    shift
    local l
    l=$(left)
    [ "$l" -gt "$cap" ] && l=$cap
    if [ "$l" -lt 15 ]; then
        say "| skipped (budget spent): $* |"
        return 1
    fi
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout "$l" "$@" >"$out/last.txt" 2>"$out/last.err"
    rc=$?
    t1=$(date +%s.%N)
    grep -v XDG_RUNTIME_DIR "$out/last.err" | tail -5 >>"$log"
    cat "$out/last.txt" >>"$log"
    wall=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
    [ "$rc" = 124 ] && say "| stopped after ${l} s: $* |"
    say "<!-- process wall ${wall} s, rc $rc: $* -->"
    return $rc
}

say
say "### PyTorch on CUDA (5 steps after 2)"
export PYTHONUNBUFFERED=1
capped 150 python3 scripts/bench_torch.py dense_vl shallow_vlc decoder_only --device cuda --batch 32 8 --both &&
    cat "$out/last.txt" >>"$out/torch.md"
capped 60 python3 scripts/bench_torch.py infer --device cuda --batch 8 1 --both &&
    cat "$out/last.txt" >>"$out/torch.md"

say
say "### ours on wgpu (5 steps after the warm-up)"
ours() { # [cap] time-arguments...
    local cap=$1
    shift
    capped "$cap" "$zoo" time --device wgpu --row "$@" && cat "$out/last.txt" >>"$out/ours.md"
}
ours 300 --spec specs/paper/dense_vl.ron --batch 32 --warmup 2 --steps 5
ours 120 --spec specs/paper/dense_vl.ron --batch 32 --warmup 1 --steps 5
ours 150 --spec specs/paper/dense_vl.ron --batch 32 --warmup 2 --steps 5 --precision f16
ours 120 --spec specs/paper/dense_vl.ron --batch 32 --warmup 2 --steps 5 --precision bf16
for spec in decoder_only shallow_vlc; do
    ours 120 --spec "specs/paper/$spec.ron" --batch 32 --warmup 2 --steps 5
    ours 90 --spec "specs/paper/$spec.ron" --batch 32 --warmup 2 --steps 5 --cached
done
ours 90 --spec specs/paper/clipseg_frozen.ron --infer --batch 8 --warmup 2 --steps 5
ours 60 --spec specs/paper/clipseg_frozen.ron --infer --batch 1 --warmup 2 --steps 5

say
say "### one DA-VL step at batch 32 under cubecl's profiler"
capped 90 env PROFILE_BATCH=32 WARMUP=1 scripts/gpu_check.sh --prebuilt "$(dirname "$zoo")" \
    --only profile && cp "$out/last.txt" "$out/profile.md"

say
say "### batch 8"
ours 90 --spec specs/paper/dense_vl.ron --batch 8 --warmup 2 --steps 5
ours 90 --spec specs/paper/dense_vl.ron --batch 8 --warmup 2 --steps 5 --precision f16
for spec in decoder_only shallow_vlc; do
    ours 60 --spec "specs/paper/$spec.ron" --batch 8 --warmup 2 --steps 5
    ours 60 --spec "specs/paper/$spec.ron" --batch 8 --warmup 2 --steps 5 --cached
done
say "<!-- done after $(($(date +%s) - started)) s -->"
