#!/usr/bin/env bash
# The CPU speed table of docs/performance.md on this machine, both sides back to back
# (developers only, not a test; on 2 cores about 7 minutes on a Xeon, 8 on a Zen 5, 19–20 on a Zen 2
# or Zen 3, 25–33 on a Zen 1; REPEAT=2 doubles that).
#
#   scripts/perf_table.sh [BIN] [PYTHON]
#
# BIN defaults to target/release/vlsm-zoo, PYTHON to pyenv/bin/python (a venv with `torch` and
# `transformers` from PyPI). The CRIS rows (batch 2, 416², the original CRIS classes imported by
# path) need the CRIS code at CRIS_CODE (default ../shared/reference-code/cris) and are left out
# without it. For every workload it runs ours, then PyTorch, one process each,
# and prints one markdown table: s/img, ratio (PyTorch time / ours: > 1 means we are faster),
# peak RSS and CPU use of each process (GNU time), under a header naming the CPU model, core
# count, ISA flags and library versions. WORKLOADS (default: all) picks a subset, e.g.
# WORKLOADS="infer1 dense_vl"; STEPS/WARMUP override the training steps' 3/1; REPEAT=N runs each
# side N times in ABBA order and reports the means (for a machine whose speed drifts between
# minutes: ours then PyTorch alone lets a slow minute fall on one side only). With the example
# built (`cargo build --release -p vlsm-zoo-cli --example gemm_peak`) the header also gives the
# machine's own f32 GEMM throughput.
set -euo pipefail
bin=${1:-target/release/vlsm-zoo}
py=${2:-pyenv/bin/python}
steps=${STEPS:-3}
warmup=${WARMUP:-1}
repeat=${REPEAT:-1}
workloads=${WORKLOADS:-"dense_vl shallow_vlc decoder_only lora full infer1 infer8 cris cris_infer"}
cris_code=${CRIS_CODE:-../shared/reference-code/cris}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)

# peak RSS (MiB), CPU use (%) and the command's stdout
timed() {
    /usr/bin/time -f "%M %P" -o "$work/time.txt" "$@" >"$work/out.txt"
    read -r kib cpu <"$work/time.txt"
    echo "$((kib / 1024)) $cpu"
}
# column N of the last `| … |` markdown row of the command's output (s/img is column 6; ours
# has the CPU use during the timed steps in column 9)
column() { grep '^|' "$work/out.txt" | tail -1 | awk -F'|' -v c="$(($1 + 1))" '{gsub(/ /, "", $c); print $c}'; }

# One run of each side for the current workload (arrays `ours`, `theirs`): appends its s/img to
# `ours_runs` / `torch_runs`, keeps the highest peak RSS and the last run's CPU use.
run_ours() {
    local rss cpu
    read -r rss cpu < <(timed "$bin" "${ours[@]}")
    ours_runs+=("$(column 6)")
    ((rss > ours_rss)) && ours_rss=$rss
    ours_cpu=$cpu
    ours_step_cpu=$(column 9)
}
run_torch() {
    local rss cpu
    read -r rss cpu < <(timed "${theirs[@]}")
    torch_runs+=("$(column 6)")
    ((rss > torch_rss)) && torch_rss=$rss
    torch_cpu=$cpu
}
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.4f", s / NR }'; }
# REPEAT runs of each side in ABBA order (ours then PyTorch, then PyTorch then ours, ...), so a
# machine that drifts over the minutes favours neither; one table row with the mean s/img of
# each side, the ratio of the means and, with REPEAT > 1, the range of the per-pair ratios.
measure() {
    local label=$1 i ratio range=""
    ours_runs=() torch_runs=() ours_rss=0 torch_rss=0
    for ((i = 0; i < repeat; i++)); do
        if ((i % 2 == 0)); then run_ours; run_torch; else run_torch; run_ours; fi
    done
    local ours_s torch_s
    ours_s=$(mean "${ours_runs[@]}")
    torch_s=$(mean "${torch_runs[@]}")
    ratio=$(awk -v a="$torch_s" -v b="$ours_s" 'BEGIN { printf "%.2f", a / b }')
    if ((repeat > 1)); then
        range=$(for ((i = 0; i < repeat; i++)); do echo "${torch_runs[i]} ${ours_runs[i]}"; done |
            awk 'NR == 1 { lo = hi = $1 / $2 } { r = $1 / $2; if (r < lo) lo = r; if (r > hi) hi = r }
                 END { printf " (%.2f–%.2f)", lo, hi }')
    fi
    echo "| $label | $ours_s | $torch_s | **$ratio**$range | $ours_rss | $torch_rss | $ours_step_cpu % / $ours_cpu | $torch_cpu |"
}

flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=""
for f in avx2 fma avx512f avx512_bf16 amx_tile; do
    [[ " $flags " == *" $f "* ]] && isa="$isa $f"
done
echo "## $(date -u +%F): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo
echo "- cores: $threads; ISA:${isa:- none of avx2/avx512/amx}; L3: $(lscpu | awk -F: '/L3/ {gsub(/^ +/, "", $2); print $2}')"
echo "- CPU family/model: $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')/$(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo "- ours: $("$bin" --version) ($bin, burn flex, $threads threads)"
echo "- PyTorch: $("$py" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.backends.cpu.get_cpu_capability()}")') (--threads $threads)"
gemm=$(dirname "$bin")/examples/gemm_peak
[ -x "$gemm" ] && echo "- this machine's f32 GEMM through burn flex: $("$gemm" 2048 5)"
((repeat > 1)) && echo "- each side run $repeat times per workload, in ABBA order; s/img are the means"
echo
echo "| workload | ours s/img | PyTorch s/img | ratio | ours peak RSS MiB | PyTorch peak RSS MiB | ours CPU (steps / process) | PyTorch CPU (process) |"
echo "|---|---|---|---|---|---|---|---|"
for w in $workloads; do
    case $w in
        infer1 | infer8)
            b=${w#infer}
            ours=(time --spec specs/paper/clipseg_frozen.ron --infer --batch "$b" --steps 5 --warmup 2 --row)
            theirs=("$py" scripts/bench_torch.py infer --batch "$b" --steps 5 --warmup 2 --threads "$threads")
            label="inference, batch $b"
            ;;
        cris | cris_infer)
            if [ ! -d "$cris_code/model" ]; then
                echo "(skipping $w: no CRIS code at $cris_code)" >&2
                continue
            fi
            infer=()
            label="CRIS full fine-tuning step, batch 2"
            if [ "$w" = cris_infer ]; then
                infer=(--infer)
                label="CRIS inference, batch 2"
            fi
            ours=(time --spec specs/paper/cris.ron --batch 2 --steps "$steps" --warmup 2 "${infer[@]}" --row)
            theirs=("$py" scripts/bench_cris_torch.py "$cris_code" --batch 2 --steps "$steps" --warmup 2 "${infer[@]}" --threads "$threads")
            ;;
        *)
            ours=(time --spec "specs/paper/$w.ron" --batch 8 --steps "$steps" --warmup "$warmup" --row)
            theirs=("$py" scripts/bench_torch.py "$w" --batch 8 --steps "$steps" --warmup "$warmup" --threads "$threads")
            label="$w train step, batch 8"
            ;;
    esac
    measure "$label"
done
