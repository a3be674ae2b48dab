#!/usr/bin/python3
"""The PyTorch peer's MLE section alone (torch_peer.bench_mle at E=64 H=256,
B=32 T=64, imported from the peer file beside this one), for
scripts/placement.sh.  Its repetitions go to standard error as the peer logs
them; standard output gets one line, "mle_cps MEDIAN".

usage: /usr/bin/python3 bench/peer_mle.py [--peer FILE] [--threads N]
           [--seed N] [--reps N] [--warmup N]"""
import argparse
import os
import sys

from peer_curve import HERE, load_peer


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default=os.path.join(HERE, "torch_peer.py"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()

    peer = load_peer(args.peer)
    torch = peer.torch
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    chars, train, _ = peer.load_corpus(peer.DEFAULT_CORPUS)
    # the fields bench_mle reads, at torch_peer.py's defaults but the counts
    opts = argparse.Namespace(seed=args.seed, lr=2e-3, batch=32, seq=64, reps=args.reps,
                              warmup=args.warmup, mle_steps=10)
    cps, _, _ = peer.bench_mle(len(chars), 64, 256, train, opts, gen)
    print(f"mle_cps {cps:.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
