#!/usr/bin/env bash
# A/B of the main job: two vlsm-zoo binaries run `run --spec specs/dense_vl.ron` alternately,
# RUNS times each (default 3), under /usr/bin/time -v, from one scratch folder so both read the
# same generated data (generated once first, untimed). Prints one line per run: build, run,
# wall time, peak RSS, CPU and the run's result line.
#   scripts/ab_main_job.sh /path/to/old/vlsm-zoo target/release/vlsm-zoo [RUNS]
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); runs=${3:-3}
spec=$(realpath "$(dirname "$0")/../specs/dense_vl.ron")
work=$(mktemp -d /tmp/vlsm-ab.XXXXXX)
cd "$work"
sed 's/epochs: 30, min_epochs: 10/epochs: 1, min_epochs: 1/' "$spec" > warm.ron
"$old" run --spec warm.ron --out warm --quiet > /dev/null   # generates data/synthetic once
lscpu | grep -E "Model name" || true
for i in $(seq 1 "$runs"); do
    for b in old new; do
        bin=$old; [ "$b" = new ] && bin=$new
        /usr/bin/time -v "$bin" run --spec "$spec" --out "run-$b-$i" --quiet > "out-$b-$i.txt" 2> "time-$b-$i.txt"
        echo "$b $i wall $(grep Elapsed "time-$b-$i.txt" | awk '{print $NF}')" \
            "peak_rss_kb $(grep 'Maximum resident' "time-$b-$i.txt" | awk '{print $NF}')" \
            "cpu $(grep 'Percent of CPU' "time-$b-$i.txt" | awk '{print $NF}') :: $(cat "out-$b-$i.txt")"
    done
done
echo "run folders in $work"
