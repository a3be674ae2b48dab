#!/usr/bin/env bash
# How each side's MLE training speed depends on where the machine has put
# its two CPUs (docs/BENCHMARKS.md, "The peer's two speeds").  For MINUTES
# (default 6) it alternates libchargan's MLE section at E=64 H=256
# (chargan_bench --mle-only) and the peer's (bench/peer_mle.py), 3
# repetitions of 10 steps each, while bench/core_latency samples the round
# trip of a cache line between the two CPUs every half second (about a
# millisecond of both CPUs a sample).  A run counts as "close" or "far" when
# all its samples agree (far: more than twice the least round trip seen),
# and the table gives each side's median by placement.  Run it on an
# otherwise idle machine.
#
#   scripts/placement.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT_DIR=${OUT_DIR:-bench-out}
minutes=${1:-6}
case $minutes in
'' | 0 | *[!0-9]*) echo "usage: $0 [MINUTES >= 1]" >&2; exit 2 ;;
esac

. scripts/bench_env.sh
chargan_bench_prepare "$BUILD_DIR" 2
mkdir -p "$OUT_DIR"
log="$OUT_DIR/placement.log"
: > "$log"

# SIDE COMMAND...: runs the command while the round trip is sampled, and
# appends "SIDE CHARS_PER_S NS NS ..." to the log.
sampled() {
    local side=$1 samples="$OUT_DIR/placement.samples" sampler cps
    shift
    "$BUILD_DIR/bench/core_latency" --every 0.5 > "$samples" &
    sampler=$!
    cps=$("$@" 2>/dev/null |
        sed -n 's/.*"mle_cps_E64_H256": \([0-9.]*\).*/\1/p; s/^mle_cps //p')
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    echo "$side ${cps:-0} $(awk '{ printf "%s ", $2 }' "$samples")" | tee -a "$log" >&2
}

end=$(( $(date +%s) + 60 * minutes ))
while [ "$(date +%s)" -lt "$end" ]; do
    sampled libchargan "$BUILD_DIR/bench/chargan_bench" --mle-only --reps 3 --warmup 1
    sampled peer /usr/bin/python3 bench/peer_mle.py --reps 3 --warmup 1
done

/usr/bin/python3 - "$log" <<'EOF'
import statistics
import sys

runs = [line.split() for line in open(sys.argv[1]) if len(line.split()) >= 3]
least = min(float(x) for r in runs for x in r[2:])
table, mixed = {}, {}
for side, cps, *ns in runs:
    places = {"far" if float(x) > 2 * least else "close" for x in ns}
    if len(places) == 1 and float(cps) > 0:
        table.setdefault((places.pop(), side), []).append((float(cps), [float(x) for x in ns]))
    else:
        mixed[side] = mixed.get(side, 0) + 1
print("| placement | round trip, ns (median) | libchargan runs | chars/s | peer runs | chars/s | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for place in ("close", "far"):
    ours, peer = table.get((place, "libchargan"), []), table.get((place, "peer"), [])
    if not ours or not peer:
        print(f"| {place} | - | {len(ours)} | - | {len(peer)} | - | - |")
        continue
    ns = statistics.median([x for r in ours + peer for x in r[1]])
    a = statistics.median(r[0] for r in ours)
    b = statistics.median(r[0] for r in peer)
    print(f"| {place} | {ns:.0f} | {len(ours)} | {a:,.0f} | {len(peer)} | {b:,.0f} | {a / b:.2f}x |")
print(f"\nRuns left out, their samples disagreeing or their figure missing: "
      f"libchargan {mixed.get('libchargan', 0)}, peer {mixed.get('peer', 0)}.")
EOF
