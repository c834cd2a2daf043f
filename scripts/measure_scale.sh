#!/usr/bin/env bash
# Scale measurements of docs/performance.md (developers only; minutes, not a test).
#
#   scripts/measure_scale.sh epochs  [BIN]   CIDAS-size SA-VLC and decoder-only epochs at 352²,
#                                           frozen-feature cache on vs --no-cache
#   scripts/measure_scale.sh stream  [BIN]   peak RSS of a decoder-only run on 200 vs 2,000
#                                           generated images at 352² (--no-cache and cached)
#
# BIN defaults to target/release/vlsm-zoo. Prints markdown rows; every run's folder stays under
# $WORK (default /tmp/vlsm-scale) for inspection. `epochs` takes N_TRAIN (64), BATCH (8) and
# EPOCHS (3) from the environment; validation has N_TRAIN/4 images.
set -euo pipefail
what=${1:?epochs or stream}
bin=${2:-target/release/vlsm-zoo}
work=${WORK:-/tmp/vlsm-scale}
mkdir -p "$work"

# peak RSS (MiB), wall seconds and CPU use (% of one core) of a command, from GNU time
timed() {
    /usr/bin/time -f "%M %e %P" -o "$work/time.txt" "$@" >/dev/null
    read -r kib secs cpu <"$work/time.txt"
    echo "$((kib / 1024)) $secs $cpu"
}

data() { # name n_train n_val n_test
    local root="$work/$1"
    [ -f "$root/anns/test.json" ] || "$bin" data synth --domain polyp --out "$root" \
        --n-train "$2" --n-val "$3" --n-test "$4" --size 352 >/dev/null
    echo "$root"
}

spec() { # file name backbone placement root epochs batch
    cat >"$1" <<EOF
(
    name: "$2",
    backbone: $3,
    placement: $4,
    head: (kind: "clipseg-decoder"),
    data: (kind: "folder", params: (root: "$5")),
    train: (epochs: $6, min_epochs: $6, batch: $7, lr: 1e-4),
)
EOF
}

# run_spec SPEC OUT on|off: a fresh run with the cache on or off; prints "rss wall cpu"
run_spec() {
    rm -rf "$2"
    local flag=()
    [ "$3" = off ] && flag=(--no-cache)
    timed "$bin" run --quiet --spec "$1" --out "$2" "${flag[@]}"
}

case "$what" in
epochs)
    n=${N_TRAIN:-64}
    batch=${BATCH:-8}
    epochs=${EPOCHS:-3}
    root=$(data "epochs-$n" "$n" $((n / 4)) 8)
    echo "$n train + $((n / 4)) val images, batch $batch: seconds of each epoch"
    echo "| method | cache | epoch seconds | peak RSS MiB | CPU |"
    echo "|---|---|---|---|---|"
    for m in "shallow_vlc|(kind: \"shallow\", params: (dim: 512, vision: true, text: true, cond: true))" \
        "decoder_only|(kind: \"decoder-only\")"; do
        name=${m%%|*}
        placement=${m#*|}
        spec "$work/$name.ron" "$name" '(kind: "clipseg", weights: "random")' "$placement" "$root" "$epochs" "$batch"
        for cache in on off; do
            out="$work/runs/$name-$cache-n$n-b$batch"
            read -r rss _ cpu < <(run_spec "$work/$name.ron" "$out" "$cache")
            secs=$(tail -n +2 "$out/history.csv" | cut -d, -f6 | paste -sd'|' | sed 's/|/ | /g')
            echo "| $name | $cache | $secs | $rss | $cpu |"
        done
    done
    ;;
stream)
    small=$(data stream-200 200 20 20)
    large=$(data stream-2000 2000 20 20)
    echo "| train images | cache | peak RSS MiB | wall s | epoch s | CPU |"
    echo "|---|---|---|---|---|---|"
    for root in "$small" "$large"; do
        n=$(basename "$root" | cut -d- -f2)
        spec "$work/stream-$n.ron" "stream-$n" '(kind: "clipseg", weights: "embedded:tiny-clipseg")' \
            '(kind: "decoder-only")' "$root" 1 16
        for cache in off on; do
            out="$work/runs/stream-$n-$cache"
            read -r rss secs cpu < <(run_spec "$work/stream-$n.ron" "$out" "$cache")
            first=$(tail -n 1 "$out/history.csv" | cut -d, -f6)
            echo "| $n | $cache | $rss | $secs | $first | $cpu |"
        done
    done
    ;;
*)
    echo "unknown measurement: $what (epochs or stream)" >&2
    exit 2
    ;;
esac
