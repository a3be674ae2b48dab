#!/usr/bin/python3
"""Prints the side-by-side table of scripts/bench.sh from the two JSON lines:
libchargan's (bench/chargan_bench.c) and the PyTorch peer's.

usage: bench_table.py CHARGAN_JSON PEER_JSON [PEER_LOG [CORE_LATENCY_LOG [FMA_PEAK_JSON]]]
With the peer's log, a second table compares with the peer's fastest
repetition of each timed section; with core_latency's log (scripts/bench.sh),
the round trips between the two CPUs around the runs; with fma_peak's JSON
(bench/fma_peak.c), the training's share of the CPU's vector-FMA peak and the
most an MLE ratio could reach at that peak."""
import json
import re
import statistics
import sys

ours = json.load(open(sys.argv[1]))
peer = json.load(open(sys.argv[2]))
peer_log = sys.argv[3] if len(sys.argv) > 3 else None
latency_log = sys.argv[4] if len(sys.argv) > 4 else None
peak = {}
if len(sys.argv) > 5:
    try:  # empty where fma_peak could not run
        peak = json.load(open(sys.argv[5]))
    except ValueError:
        pass

# Both sides must have measured the same shapes (scripts/bench.sh gives its
# options to both); older JSON without these keys ran the defaults.
# The peer rounds its floats to 4 places in its JSON, so tau is compared to that.
for key, default in (("batch", 32), ("seq", 64), ("tau", 1.0), ("gan_feed", "hard")):
    a, b = ours.get(key, default), peer.get(key, default)
    same = (abs(a - b) <= 0.5e-4 + 1e-9 * abs(a)) if key == "tau" else a == b
    if not same:
        sys.exit(f"bench_table: {key} differs: libchargan {ours.get(key)}, peer {peer.get(key)}")
shape = f"B={ours.get('batch', 32)} T={ours.get('seq', 64)}"
tau = f", tau {ours['tau']:g}" if ours.get("tau", 1.0) != 1.0 else ""
tau += ", soft feed" if ours.get("gan_feed", "hard") == "soft" else ""
streams = f"{ours.get('sample_batch', 32)} x {ours.get('sample_len', 256)}"

# key, label, better ("higher"/"lower"), target ratio ours-vs-peer (None: none)
ROWS = [
    ("mle_cps_E64_H256", f"MLE chars/s, E=64 H=256, {shape}", "higher", 4.0),
    ("mle_cps_E128_H128", f"MLE chars/s, E=128 H=128, {shape}", "higher", 3.0),
    ("sample_cps", f"sampling chars/s, {streams}", "higher", 3.0),
    ("sample1_cps", f"sampling chars/s, 1 x {ours.get('sample1_len', 2048)}", "higher", 10.0),
    ("gan_steps_per_s", f"Gumbel GAN steps/s, {shape}{tau}", "higher", 5.0),
    ("reinforce_steps_per_s", f"REINFORCE GAN steps/s, {shape}", "higher", 5.0),
    ("peak_rss_mb", "peak RSS, MB", "lower", 10.0),
]

print("| workload | libchargan | PyTorch | ratio | target | met |")
print("|---|---:|---:|---:|---:|:---:|")
for key, label, better, target in ROWS:
    a, b = ours.get(key), peer.get(key)
    if a is None or b is None or a == 0 or b == 0:
        print(f"| {label} | {a} | {b} | - | - | - |")
        continue
    ratio = a / b if better == "higher" else b / a
    met = "yes" if target is None or ratio >= target else "no"
    fmt = ",.1f" if min(a, b) >= 10 else ".3f"  # steps/s at large shapes are below 10
    print(f"| {label} | {a:{fmt}} | {b:{fmt}} | {ratio:.2f}x | >= {target:g}x | {met} |")
a, b = ours.get("val_bpc_60s"), peer.get("val_bpc_60s")
if a is not None and b is not None:
    d = b - a
    print(f"| held-out bits/char after {ours.get('budget_s', 60):g} s (E=64 H=256) | {a:.3f} | {b:.3f} |"
          f" {d:+.3f} | >= +0.2 | {'yes' if d >= 0.2 else 'no'} |")
g, s = ours.get("train_gflops_E64_H256"), ours.get("sgemm_gflops_1024")
if g and s:
    print(f"\nTraining at E=64 H=256 runs at {g:.1f} GFLOP/s, {100 * g / s:.0f}% of this machine's "
          f"{ours.get('threads', 2)}-thread sgemm rate ({s:.1f} GFLOP/s at 1024^3; {ours.get('sgemm_gflops_step_shape', 0):.1f} "
          f"at the step's {ours.get('batch', 32) * ours.get('seq', 64)}x1024x256); target >= 50%.")
p, cps, peer_cps = peak.get("fma_peak_gflops"), ours.get("mle_cps_E64_H256"), peer.get("mle_cps_E64_H256")
if g and p and cps and peer_cps:
    # the FLOPs per character, as chargan_bench counted them
    flops_per_char = g * 1e9 / cps
    print(f"The CPU's {peak.get('fma_isa')} FMA peak on {peak.get('threads')} threads is {p:.1f} "
          f"GFLOP/s (bench/fma_peak): the training runs at {100 * g / p:.0f}% of it. At the peak "
          f"itself it would train {p * 1e9 / flops_per_char:,.0f} chars/s, "
          f"{p * 1e9 / flops_per_char / peer_cps:.2f}x this peer at E=64 H=256.")

# The peer's log lines that carry repetitions, by the JSON key they feed; a
# section redone after contention is logged twice and the JSON holds the last.
REPS_LINES = {
    "mle_cps_E64_H256": r"\[mle E=64 H=256\]",
    "mle_cps_E128_H128": r"\[mle E=128 H=128\]",
    "gan_steps_per_s": r"\[gan E=64 H=256[^]]*\]",
    "reinforce_steps_per_s": r"\[reinforce E=64 H=256\]",
}


def peer_reps(path):
    reps = {}
    for line in open(path, errors="replace"):
        for key, pattern in REPS_LINES.items():
            m = re.match(pattern + r".*reps=\[([^]]*)\]", line)
            if m and m.group(1).strip():
                reps[key] = [float(x) for x in m.group(1).split(",")]
    return reps


if peer_log:
    fastest = {key: max(r) for key, r in peer_reps(peer_log).items()}
    rows = [(key, label, target) for key, label, _, target in ROWS if key in fastest and ours.get(key)]
    if rows:
        print("\nAgainst the peer's fastest repetition of each section (its speed changes within a "
              "run on some machines: docs/BENCHMARKS.md, \"2026-12-06, the peer's two speeds\"):\n")
        print("| workload | libchargan (median) | PyTorch (fastest) | ratio | target | met |")
        print("|---|---:|---:|---:|---:|:---:|")
        for key, label, target in rows:
            a, b = ours[key], fastest[key]
            fmt = ",.1f" if min(a, b) >= 10 else ".3f"
            met = "yes" if a / b >= target else "no"
            print(f"| {label} | {a:{fmt}} | {b:{fmt}} | {a / b:.2f}x | >= {target:g}x | {met} |")


def latency_groups(path):
    """core_latency's samples, in ns, under each '# WHEN' line."""
    groups, when = [], None
    for line in open(path, errors="replace"):
        if line.startswith("# "):
            when = line[2:].strip()
            groups.append((when, []))
        elif when is not None and len(line.split()) == 2:
            groups[-1][1].append(float(line.split()[1]))
    return [(when, ns) for when, ns in groups if ns]


if latency_log:
    groups = latency_groups(latency_log)
    if groups:
        parts = [f"{when} {statistics.median(ns):.0f} ns ({min(ns):.0f}-{max(ns):.0f}, {len(ns)} samples)"
                 for when, ns in groups]
        print("\nRound trip of a cache line between the two CPUs (bench/core_latency, idle machine): "
              + "; ".join(parts) + ".")

busy = peer.get("other_procs_busy_cores")
if busy:
    print(f"\nPeer's record of other processes' load per section (cores): {json.dumps(busy)}")
