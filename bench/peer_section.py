#!/usr/bin/python3
"""One of the PyTorch peer's timed sections alone, at E=64 H=256, B=32 T=64,
as its full run times it (torch_peer.bench_mle, bench_gan or bench_reinforce,
imported from the peer file beside this one), for scripts/placement.sh; the
counterpart of `chargan_bench --only`.  Standard output gets one JSON line
under the key the full run reports the section with; the repetitions go to
standard error.

usage: /usr/bin/python3 bench/peer_section.py --section mle|gumbel|reinforce
           [--peer FILE] [--threads N] [--seed N] [--reps N] [--warmup N]
           [--tau T] [--gan-feed hard|soft]"""
import argparse
import json
import os
import sys

from peer_curve import HERE, load_peer

# section: (the full run's JSON key, the peer's function)
SECTIONS = {
    "mle": ("mle_cps_E64_H256", "bench_mle"),
    "gumbel": ("gan_steps_per_s", "bench_gan"),
    "reinforce": ("reinforce_steps_per_s", "bench_reinforce"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--section", choices=sorted(SECTIONS), required=True)
    ap.add_argument("--peer", default=os.path.join(HERE, "torch_peer.py"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tau", type=float, default=1.0)
    ap.add_argument("--gan-feed", choices=["hard", "soft"], default="hard")
    args = ap.parse_args()

    peer = load_peer(args.peer)
    torch = peer.torch
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    chars, train, _ = peer.load_corpus(peer.DEFAULT_CORPUS)
    # the fields the section functions read: torch_peer.py's defaults but the counts
    opts = argparse.Namespace(seed=args.seed, lr=2e-3, gan_lr=1e-4, batch=32, seq=64,
                              reps=args.reps, warmup=args.warmup, mle_steps=10, gan_steps=3,
                              tau=args.tau, gan_feed=args.gan_feed)
    key, function = SECTIONS[args.section]
    # bench_mle logs its repetitions and returns its model third; the others return them
    rate, _, third = getattr(peer, function)(len(chars), 64, 256, train, opts, gen)
    if args.section != "mle":
        print(f"[{args.section}] reps={[round(r, 3) for r in third]}", file=sys.stderr)
    print(json.dumps({key: round(rate, 3)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
