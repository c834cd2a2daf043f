#!/usr/bin/env bash
# Summarises a cubecl kernel profile: the last summary table of a log written with cubecl's
# profiling logger at level "basic" (a `cubecl.toml` with `[profiling.logger] level = "basic"`
# and `file = "LOG"` in the working folder, or CUBECL_DEBUG_OPTION=profile with
# CUBECL_DEBUG_LOG=LOG), grouped by kernel family (the first word of the kernel's name:
# MatmulEntry, ElemwiseFuse, ReduceKernel, ...). The table cubecl prints after each device sync
# covers the kernels since the previous one, so for `vlsm-zoo time --steps 1` the last table is
# one step. Prints a markdown table: family, launches, GPU time, share; then the totals.
#   scripts/kernel_profile.sh LOG
set -euo pipefail
log=${1:?usage: scripts/kernel_profile.sh LOG}
echo "| kernel family | launches | GPU time ms | share |"
echo "|---|---|---|---|"
awk -F'|' '
function seconds(d) {
    gsub(/ /, "", d)
    if (d ~ /ns$/) return substr(d, 1, length(d) - 2) / 1e9
    if (d ~ /µs$/) return substr(d, 1, length(d) - 3) / 1e6
    if (d ~ /us$/) return substr(d, 1, length(d) - 2) / 1e6
    if (d ~ /ms$/) return substr(d, 1, length(d) - 2) / 1e3
    if (d ~ /s$/) return substr(d, 1, length(d) - 1) + 0
    return 0
}
/^\| Name +\|/ { table++; delete t; delete n; next }
table && NF >= 6 && $(NF-3) ~ /[0-9](ns|µs|us|ms|s) *$/ {
    name = $2; gsub(/^ +| +$/, "", name); split(name, w, /[ _]/)
    if (name == "Total") { total = seconds($(NF-3)); launches = $(NF-2) + 0; next }
    t[w[1]] += seconds($(NF-3)); n[w[1]] += $(NF-2)
}
END {
    if (!table) { print "no cubecl summary table in the log" > "/dev/stderr"; exit 1 }
    for (f in t) printf "%s\t| %s | %d | %.2f | %.1f %% |\n", t[f], f, n[f], t[f] * 1e3, 100 * t[f] / total
    printf "-1\t| all | %d | %.2f | 100 %% |\n", launches, total * 1e3
}' "$log" | sort -t$'\t' -k1,1gr | cut -f2-
