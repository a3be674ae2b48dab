#!/usr/bin/env python3
"""oracle_report.py OUT_DIR - the table and the frontier plot of the SeqGAN
oracle experiment (scripts/oracle_experiment.sh wrote OUT_DIR).

Reads OUT_DIR/{mle,<estimator>,mlecont}-<seed>.csv (mlecont: the control,
as many more MLE steps at the adversarial learning rate) (bench/seqgan_oracle.c's CSV:
phase,when,temperature,nll_oracle,nll_test) and writes OUT_DIR/report.md
(also printed) and OUT_DIR/frontier.png (gnuplot, if installed).

The bar is the MLE frontier (Caccia et al., "Language GANs Falling
Short"): every MLE generator evaluated (each epoch from the first
evaluation on, each temperature) is a point (NLL-test, NLL-oracle); the
frontier of a seed is the lower-left envelope of its points, joined by
straight lines.  An adversarial generator (at each temperature) is below
the frontier when its NLL-oracle is lower than the frontier's at its
NLL-test; a point whose NLL-test lies outside the frontier's range is
not comparable and is counted as such.
"""
import csv
import glob
import os
import re
import shutil
import statistics
import subprocess
import sys

PUBLISHED = "SeqGAN (AAAI 2017) Table 1: MLE 9.038, SeqGAN 8.736 NLL-oracle"


def read_runs(out):
    """{(method, seed): [(phase, when, temperature, nll_oracle, nll_test)]}"""
    runs = {}
    for path in sorted(glob.glob(os.path.join(out, "*-*.csv"))):
        m = re.match(r"(\w+)-(\d+)\.csv$", os.path.basename(path))
        if not m:
            continue
        rows = []
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                rows.append((r["phase"], int(r["when"]), float(r["temperature"]),
                             float(r["nll_oracle"]), float(r["nll_test"])))
        if rows:
            runs[(m.group(1), int(m.group(2)))] = rows
    return runs


def is_own(method, row):
    """A row of the method itself: MLE epochs from the first on, or the
    adversarial steps (whose files also hold the starting point as 'mle')."""
    return row[1] > 0 and (row[0] == "mle") == (method == "mle")


def start_epoch(method, mle_rows):
    """The MLE epoch an adversarial run started from: 'reinforcefrom10' says
    10; otherwise the MLE run's last epoch."""
    m = re.search(r"from(\d+)$", method)
    return int(m.group(1)) if m else max(r[1] for r in mle_rows)


def pareto(points):
    """Lower-left envelope of (x, y) points, sorted by x."""
    front = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def frontier_at(front, x):
    """The envelope's NLL-oracle at NLL-test x, or None outside its range."""
    if not front or x < front[0][0] or x > front[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(front, front[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return front[-1][1]


def mean_sd(values):
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: oracle_report.py OUT_DIR")
    out = sys.argv[1]
    runs = read_runs(out)
    seeds = sorted({s for (m, s) in runs if m == "mle"})
    methods = ["mle"] + sorted({m for (m, s) in runs if m != "mle"})
    if not seeds:
        sys.exit(f"oracle_report.py: no mle-<seed>.csv in {out}")

    lines = [f"Seeds: {', '.join(map(str, seeds))}. {PUBLISHED}.", ""]
    lines.append("| generator | evaluated at | NLL-oracle, final (T=1) | NLL-oracle, best (T=1) "
                 "| NLL-test, final (T=1) |")
    lines.append("|---|---|---:|---:|---:|")
    for method in methods:
        finals, bests, tests, last = [], [], [], None
        for s in seeds:
            rows = [r for r in runs.get((method, s), []) if is_own(method, r) and r[2] == 1.0]
            if not rows:
                continue
            last = max(r[1] for r in rows)
            final = [r for r in rows if r[1] == last][0]
            finals.append(final[3])
            tests.append(final[4])
            bests.append(min(r[3] for r in rows))
        unit = ("epoch" if method == "mle" else
                "MLE step" if method.startswith("mlecont") else "GAN step")
        lines.append(f"| {method} | {unit} {last} | {mean_sd(finals)} | {mean_sd(bests)} | "
                     f"{mean_sd(tests)} |")

    # The frontier, per seed, against each adversarial generator's final sweep.
    lines += ["", "Against each seed's MLE frontier (every evaluated epoch x temperatures "
              "0.5-1.2); gap = NLL-oracle minus the frontier's at the same NLL-test "
              "(negative: below the frontier):", "",
              "| generator | points below | not comparable | smallest gap | gap at T=1, per seed "
              "| gap at T=1 to its own start's temperature curve, per seed |",
              "|---|---:|---:|---:|---|---|"]
    fronts = {}
    for s in seeds:
        pts = [(r[4], r[3]) for r in runs[("mle", s)] if r[0] == "mle" and r[1] > 0]
        fronts[s] = pareto(pts)
    for method in methods[1:]:
        below = outside = total = 0
        gaps, t1, own = [], [], []
        for s in seeds:
            rows = runs.get((method, s), [])
            if not rows:
                continue
            last = max(r[1] for r in rows if is_own(method, r))
            for r in rows:
                if not is_own(method, r) or r[1] != last:
                    continue
                total += 1
                f = frontier_at(fronts[s], r[4])
                if f is None:
                    outside += 1
                    continue
                gaps.append(r[3] - f)
                below += r[3] < f
                if r[2] == 1.0:
                    t1.append(f"seed {s}: {r[3] - f:+.3f}")
            # The starting generator's own curve over temperatures.
            e0 = start_epoch(method, runs[("mle", s)])
            curve = sorted((r[4], r[3]) for r in runs[("mle", s)] if r[0] == "mle" and r[1] == e0)
            for r in rows:
                if is_own(method, r) and r[1] == last and r[2] == 1.0:
                    f0 = frontier_at(curve, r[4])
                    own.append(f"seed {s}: " + ("outside" if f0 is None else f"{r[3] - f0:+.3f}"))
        small = f"{min(gaps):+.3f}" if gaps else "n/a"
        lines.append(f"| {method} | {below} of {total} | {outside} | {small} | "
                     f"{'; '.join(t1) or 'n/a'} | {'; '.join(own) or 'n/a'} |")

    report = "\n".join(lines) + "\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(report)
    print(report, end="")
    plot(out, runs, seeds, methods, fronts)


def plot(out, runs, seeds, methods, fronts):
    if not shutil.which("gnuplot"):
        print("(gnuplot not installed: no frontier.png)")
        return
    data = os.path.join(out, "frontier.dat")
    blocks = []
    with open(data, "w") as f:
        for s in seeds:
            f.write("\n".join(f"{x} {y}" for x, y in fronts[s]) + "\n\n\n")
            blocks.append(("lines", f"MLE frontier, seed {s}"))
        pts = [(r[4], r[3]) for s in seeds for r in runs[("mle", s)] if r[0] == "mle" and r[1] > 0]
        f.write("\n".join(f"{x} {y}" for x, y in pts) + "\n\n\n")
        blocks.append(("points pt 7 ps 0.4 lc rgb '#999999'", "MLE, every epoch x temperature"))
        for method in methods[1:]:
            pts = []
            for s in seeds:
                rows = runs.get((method, s), [])
                if rows:
                    last = max(r[1] for r in rows if is_own(method, r))
                    pts += [(r[4], r[3]) for r in rows if is_own(method, r) and r[1] == last]
            f.write("\n".join(f"{x} {y}" for x, y in pts) + "\n\n\n")
            # squares for REINFORCE, triangles for Gumbel, circles for Gumbel with the
            # soft feed, a cross or a star for the MLE control; hollow when started early
            early = "from" in method
            if method.startswith("mlecont"):
                pt = 2 if early else 3
            elif method.startswith("reinforce"):
                pt = 4 if early else 5
            elif method.startswith("gumbelsoft"):
                pt = 6 if early else 7
            else:
                pt = 8 if early else 9
            blocks.append((f"points pt {pt} ps 1.2", f"{method}, final, temperatures 0.5-1.2"))
    plots = ", ".join(f"'{data}' index {i} with {style} title \"{title}\""
                      for i, (style, title) in enumerate(blocks))
    script = (f"set terminal pngcairo size 900,650\nset output '{out}/frontier.png'\n"
              "set xlabel 'NLL-test (nats/token, lower = more diverse coverage)'\n"
              "set ylabel 'NLL-oracle (nats/token, lower = higher quality)'\n"
              "set title 'SeqGAN oracle: adversarial generators against the MLE frontier'\n"
              f"set key top right\nset grid\nplot {plots}\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"wrote {out}/frontier.png")


if __name__ == "__main__":
    main()
