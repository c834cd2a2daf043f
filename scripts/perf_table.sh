#!/usr/bin/env bash
# The CPU speed table of docs/performance.md on this machine, both sides back to back
# (developers only, not a test; on 2 cores about 8 minutes on a Zen 5, 19–20 on a Zen 2 or Zen 3).
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
# WORKLOADS="infer1 dense_vl"; STEPS/WARMUP override the training steps' 3/1. With the example
# built (`cargo build --release -p vlsm-zoo-cli --example gemm_peak`) the header also gives the
# machine's own f32 GEMM throughput.
set -euo pipefail
bin=${1:-target/release/vlsm-zoo}
py=${2:-pyenv/bin/python}
steps=${STEPS:-3}
warmup=${WARMUP:-1}
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
echo
echo "| workload | ours s/img | PyTorch s/img | ratio | ours peak RSS MiB | PyTorch peak RSS MiB | ours CPU (steps / process) | PyTorch CPU (process) |"
echo "|---|---|---|---|---|---|---|---|"
for w in $workloads; do
    case $w in
        infer1 | infer8)
            b=${w#infer}
            ours=(time --spec specs/paper/clipseg_frozen.ron --infer --batch "$b" --steps 5 --warmup 2 --row)
            theirs=(infer --batch "$b" --steps 5 --warmup 2)
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
            theirs=(--batch 2 --steps "$steps" --warmup 2 "${infer[@]}")
            read -r ours_rss ours_cpu < <(timed "$bin" "${ours[@]}")
            ours_s=$(column 6)
            ours_step_cpu=$(column 9)
            read -r torch_rss torch_cpu < <(timed "$py" scripts/bench_cris_torch.py "$cris_code" "${theirs[@]}" --threads "$threads")
            torch_s=$(column 6)
            ratio=$(awk -v a="$torch_s" -v b="$ours_s" 'BEGIN { printf "%.2f", a / b }')
            echo "| $label | $ours_s | $torch_s | **$ratio** | $ours_rss | $torch_rss | $ours_step_cpu % / $ours_cpu | $torch_cpu |"
            continue
            ;;
        *)
            ours=(time --spec "specs/paper/$w.ron" --batch 8 --steps "$steps" --warmup "$warmup" --row)
            theirs=("$w" --batch 8 --steps "$steps" --warmup "$warmup")
            label="$w train step, batch 8"
            ;;
    esac
    read -r ours_rss ours_cpu < <(timed "$bin" "${ours[@]}")
    ours_s=$(column 6)
    ours_step_cpu=$(column 9)
    read -r torch_rss torch_cpu < <(timed "$py" scripts/bench_torch.py "${theirs[@]}" --threads "$threads")
    torch_s=$(column 6)
    ratio=$(awk -v a="$torch_s" -v b="$ours_s" 'BEGIN { printf "%.2f", a / b }')
    echo "| $label | $ours_s | $torch_s | **$ratio** | $ours_rss | $torch_rss | $ours_step_cpu % / $ours_cpu | $torch_cpu |"
done
