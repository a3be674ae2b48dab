#!/usr/bin/python3
"""Prints the side-by-side table of scripts/bench.sh from the two JSON lines:
libchargan's (bench/chargan_bench.c) and the PyTorch peer's."""
import json
import sys

ours = json.load(open(sys.argv[1]))
peer = json.load(open(sys.argv[2]))

# Both sides must have measured the same shapes (scripts/bench.sh gives its
# options to both); older JSON without these keys ran the defaults.
for key, default in (("batch", 32), ("seq", 64)):
    if ours.get(key, default) != peer.get(key, default):
        sys.exit(f"bench_table: {key} differs: libchargan {ours.get(key)}, peer {peer.get(key)}")
shape = f"B={ours.get('batch', 32)} T={ours.get('seq', 64)}"
streams = f"{ours.get('sample_batch', 32)} x {ours.get('sample_len', 256)}"

# key, label, better ("higher"/"lower"), target ratio ours-vs-peer (None: none)
ROWS = [
    ("mle_cps_E64_H256", f"MLE chars/s, E=64 H=256, {shape}", "higher", 4.0),
    ("mle_cps_E128_H128", f"MLE chars/s, E=128 H=128, {shape}", "higher", 3.0),
    ("sample_cps", f"sampling chars/s, {streams}", "higher", 3.0),
    ("sample1_cps", f"sampling chars/s, 1 x {ours.get('sample1_len', 2048)}", "higher", 10.0),
    ("gan_steps_per_s", f"Gumbel GAN steps/s, {shape}", "higher", 5.0),
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
busy = peer.get("other_procs_busy_cores")
if busy:
    print(f"\nPeer's record of other processes' load per section (cores): {json.dumps(busy)}")
