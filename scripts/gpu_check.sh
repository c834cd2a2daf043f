#!/usr/bin/env bash
# One-command GPU check: on a machine with a GPU and its Vulkan driver (NVIDIA's, AMD's, Intel's,
# or Mesa's llvmpipe for a software run), from the repository root:
#
#     scripts/gpu_check.sh                 # build with --features gpu, list adapters, test, time
#     scripts/gpu_check.sh --main-job      # ... and train the main job (specs/dense_vl.ron) on wgpu
#     scripts/gpu_check.sh --prebuilt DIR  # use DIR/vlsm-zoo and DIR/gpu-tests built elsewhere
#                                          # from the same commit (no cargo on the GPU machine)
#     scripts/gpu_check.sh --only tests    # or --only timing, --only profile: one part
#     scripts/gpu_check.sh --kernel-profile # ... and where one DA-VL step's GPU time goes, per
#                                          # kernel family (cubecl's profiler; PROFILE_BATCH=32,
#                                          # PROFILE_SPEC=specs/paper/dense_vl.ron)
#
# It prints the Vulkan adapters, runs the GPU test set (tests/gpu.rs: HF parity, DA-VLC/SA-VLC
# parity, a training step, CPU-vs-GPU step and run agreement, checkpoints across devices), then
# times CIDAS-size training steps (DA-VL, SA-VLC, decoder-only; batch 8 and 32) and inference
# (batch 1 and 8) with `vlsm-zoo time` and prints them as one markdown table; the placements
# that allow a frozen-feature cache (SA-VLC, decoder-only) are timed from cached frozen outputs
# too (`--cached`, the step of every epoch after the first). BATCHES="8", STEPS=3,
# SPECS="decoder_only", CACHED_SPECS="" or INFER_BATCHES="" make it shorter; PRECISIONS="f32 bf16 f16"
# times the uncached training steps and inference with the frozen backbone in those types too
# (`train.precision`; default "f32"); STEP_TIMEOUT=S
# stops any one timing after S seconds and goes on with the next. Budget time for the first steps of every workload: burn's wgpu backend
# compiles and autotunes its kernels then (on an H200 with NVIDIA's Vulkan driver, the first
# training step of even the tiny model took over 90 s; see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."

prebuilt=""
main_job=0
kernel_profile=0
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prebuilt) prebuilt="$2"; shift 2 ;;
        --main-job) main_job=1; shift ;;
        --only) only="$2"; shift 2 ;;
        --kernel-profile) kernel_profile=1; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)"; exit 2 ;;
    esac
done
BATCHES="${BATCHES:-8 32}"
STEPS="${STEPS:-5}"
WARMUP="${WARMUP:-2}"
DEVICE="${DEVICE:-wgpu}"
SPECS="${SPECS:-dense_vl shallow_vlc decoder_only}"
CACHED_SPECS="${CACHED_SPECS-shallow_vlc decoder_only}"
INFER_BATCHES="${INFER_BATCHES-1 8}"
STEP_TIMEOUT="${STEP_TIMEOUT:-0}"
PRECISIONS="${PRECISIONS:-f32}"
# wgpu/Vulkan warns on every call without a private runtime dir.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
    export XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
fi

echo "== machine =="
uname -srm
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
nproc | sed 's/^/CPU cores: /'

echo "== Vulkan adapters =="
if command -v vulkaninfo >/dev/null; then
    if info="$(vulkaninfo --summary 2>&1)"; then
        echo "$info" | grep -E 'deviceName|deviceType|driverName|apiVersion' || echo "vulkaninfo lists no device"
    else
        echo "vulkaninfo failed: $(echo "$info" | tail -1)"
    fi
else
    echo "(vulkaninfo not installed: the test binary reports the adapter it opens)"
fi

if [ -n "$prebuilt" ]; then
    zoo="$prebuilt/vlsm-zoo"
    tests="$prebuilt/gpu-tests"
else
    echo "== build (release, --features gpu) =="
    cargo build --release -p vlsm-zoo-cli --features gpu
    tests="$(cargo test --release -p vlsm-zoo-tests --features gpu --test gpu --no-run --message-format=json \
        | grep -o '"executable":"[^"]*"' | grep '/gpu-' | cut -d'"' -f4 | tail -1)"
    zoo="target/release/vlsm-zoo"
fi
if [ "$only" = profile ]; then
    kernel_profile=1
elif [ "$only" != timing ]; then
    [ -x "$tests" ] || { echo "missing the GPU test binary ($tests)"; exit 1; }
    echo "== GPU test set (tests/gpu.rs) =="
    VLSM_REQUIRE_GPU=1 "$tests" --test-threads=1 --nocapture 2>&1 | grep -v 'XDG_RUNTIME_DIR'
fi
[ "$only" = tests ] && exit 0
[ -x "$zoo" ] || { echo "missing $zoo"; exit 1; }

if [ "$only" != profile ]; then
    echo "== timing (CIDAS-size CLIPSeg, 352², backbone in $PRECISIONS, random weights; $STEPS steps after $WARMUP warm-up) =="
    echo "| spec | workload | device | batch | s/step | s/img | peak RSS MiB | device pool MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    timed() { # one `vlsm-zoo time` row, or a row saying it was stopped
        if [ "$STEP_TIMEOUT" -gt 0 ]; then
            timeout "$STEP_TIMEOUT" "$zoo" time "$@" --row || echo "| $* | stopped after ${STEP_TIMEOUT} s |"
        else
            "$zoo" time "$@" --row
        fi
    }
    for batch in $BATCHES; do
        for spec in $CACHED_SPECS; do
            timed --spec "specs/paper/$spec.ron" --cached --device "$DEVICE" --batch "$batch" \
                --steps "$STEPS" --warmup "$WARMUP"
        done
        for precision in $PRECISIONS; do
            for spec in $SPECS; do
                timed --spec "specs/paper/$spec.ron" --device "$DEVICE" --batch "$batch" \
                    --steps "$STEPS" --warmup "$WARMUP" --precision "$precision"
            done
        done
    done
    for precision in $PRECISIONS; do
        for batch in $INFER_BATCHES; do
            timed --spec specs/paper/clipseg_frozen.ron --infer --device "$DEVICE" --batch "$batch" \
                --steps "$STEPS" --warmup "$WARMUP" --precision "$precision"
        done
    done
fi

if [ "$kernel_profile" = 1 ]; then
    batch="${PROFILE_BATCH:-32}"
    spec="$(realpath "${PROFILE_SPEC:-specs/paper/dense_vl.ron}")"
    echo "== kernel profile: one training step of $spec, batch $batch, on $DEVICE (cubecl's profiler) =="
    # cubecl reads its configuration from a cubecl.toml in the working folder (vlsm-zoo keeps it
    # and sets only the kernel store). The profiler waits for every kernel, so the step's wall
    # time here is not its speed; the table is where its GPU time goes.
    dir="$(mktemp -d)"
    printf '[profiling.logger]\nlevel = "basic"\nfile = "%s/kernels.log"\n' "$dir" > "$dir/cubecl.toml"
    zoo_path="$(realpath "$zoo")"
    (cd "$dir" && "$zoo_path" time --spec "$spec" --device "$DEVICE" --batch "$batch" --steps 1 \
        --warmup "$WARMUP" --row)
    scripts/kernel_profile.sh "$dir/kernels.log"
fi

if [ "$main_job" = 1 ]; then
    echo "== main job on $DEVICE (specs/dense_vl.ron, 30 epochs) =="
    out="$(mktemp -d)/dense_vl-$DEVICE"
    started=$(date +%s)
    "$zoo" run --spec specs/dense_vl.ron --device "$DEVICE" --quiet --out "$out"
    echo "wall time: $(( $(date +%s) - started )) s (data generation, training, evaluation)"
    sed -n '1,25p' "$out/report.md"
fi
