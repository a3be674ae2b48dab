#!/usr/bin/env bash
# How each side's speed depends on where the machine has put its two CPUs
# (docs/BENCHMARKS.md, "2026-12-06, the peer's two speeds").  For MINUTES
# (default 6) it alternates libchargan's run of one timed section at E=64 H=256
# (chargan_bench --only SECTION) and the peer's (bench/peer_section.py
# --section SECTION), 3 repetitions after one warm-up call each, while
# bench/core_latency samples the round trip of a cache line between the two
# CPUs every half second (about a millisecond of both CPUs a sample).  A run
# counts as "close" or "far" when all its samples agree (far: more than twice
# the least round trip seen), and the table gives each side's median by
# placement.  SECTION: mle (default; chars/s), gumbel or reinforce (steps/s).
# Run it on an otherwise idle machine.
#
#   scripts/placement.sh [--section SECTION] [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT_DIR=${OUT_DIR:-bench-out}
usage() { echo "usage: $0 [--section mle|gumbel|reinforce] [MINUTES >= 1]" >&2; exit 2; }
section=mle
if [ "${1:-}" = --section ]; then
    section=${2:-}
    shift 2 || usage
fi
case $section in
mle) key=mle_cps_E64_H256 unit=chars/s ;;
gumbel) key=gan_steps_per_s unit=steps/s ;;
reinforce) key=reinforce_steps_per_s unit=steps/s ;;
*) usage ;;
esac
minutes=${1:-6}
case $minutes in
'' | 0 | *[!0-9]*) usage ;;
esac

. scripts/bench_env.sh
chargan_bench_prepare "$BUILD_DIR" 2
mkdir -p "$OUT_DIR"
log="$OUT_DIR/placement-$section.log"
: > "$log"

# SIDE COMMAND...: runs the command while the round trip is sampled, and
# appends "SIDE RATE NS NS ..." to the log (RATE 0 if the command gave none).
sampled() {
    local side=$1 samples="$OUT_DIR/placement.samples" sampler rate
    shift
    "$BUILD_DIR/bench/core_latency" --every 0.5 > "$samples" &
    sampler=$!
    rate=$("$@" 2>/dev/null | sed -n "s/.*\"$key\": \\([0-9.]*\\).*/\\1/p")
    kill "$sampler"
    wait "$sampler" 2>/dev/null || true
    echo "$side ${rate:-0} $(awk '{ printf "%s ", $2 }' "$samples")" | tee -a "$log" >&2
}

end=$(( $(date +%s) + 60 * minutes ))
while [ "$(date +%s)" -lt "$end" ]; do
    sampled libchargan "$BUILD_DIR/bench/chargan_bench" --only "$section" --reps 3 --warmup 1
    sampled peer /usr/bin/python3 bench/peer_section.py --section "$section" --reps 3 --warmup 1
done

/usr/bin/python3 - "$log" "$section" "$unit" <<'EOF'
import statistics
import sys

log, section, unit = sys.argv[1:4]
runs = [line.split() for line in open(log) if len(line.split()) >= 3]
least = min(float(x) for r in runs for x in r[2:])
table, left_out = {}, {}
for side, rate, *ns in runs:
    places = {"far" if float(x) > 2 * least else "close" for x in ns}
    if len(places) == 1 and float(rate) > 0:
        table.setdefault((places.pop(), side), []).append((float(rate), [float(x) for x in ns]))
    else:
        left_out[side] = left_out.get(side, 0) + 1
print(f"{section} at E=64 H=256, B=32 T=64:\n")
print(f"| placement | round trip, ns (median) | libchargan runs | {unit} | peer runs | {unit} | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for place in ("close", "far"):
    ours, peer = table.get((place, "libchargan"), []), table.get((place, "peer"), [])
    if not ours or not peer:
        print(f"| {place} | - | {len(ours)} | - | {len(peer)} | - | - |")
        continue
    ns = statistics.median([x for r in ours + peer for x in r[1]])
    a = statistics.median(r[0] for r in ours)
    b = statistics.median(r[0] for r in peer)
    fmt = ",.0f" if min(a, b) >= 100 else ".3f"
    print(f"| {place} | {ns:.0f} | {len(ours)} | {a:{fmt}} | {len(peer)} | {b:{fmt}} | {a / b:.2f}x |")
print(f"\nRuns left out, their samples disagreeing or their figure missing: "
      f"libchargan {left_out.get('libchargan', 0)}, peer {left_out.get('peer', 0)}.")
EOF
