#!/usr/bin/python3
"""The PyTorch peer's side of `chargan_bench --curve`: held-out bits/char after
given numbers of MLE steps, trained and evaluated exactly as the peer's 60 s
budget run (torch_peer.train_budget and eval_bpc_stateful, imported from the
peer file beside this one), with a step count instead of a time budget.

usage: /usr/bin/python3 bench/peer_curve.py [--peer FILE] [--corpus FILE]
           [--threads N] [--seed N] [--lr LR] [--steps N,N,...]
One line per mark: "step N train_s S val_bpc X"."""
import argparse
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_peer(path):
    # the peer sets OMP_WAIT_POLICY before it imports torch: import it first
    spec = importlib.util.spec_from_file_location("torch_peer", path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default=os.path.join(HERE, "torch_peer.py"))
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--steps", default="250,500,1000,1500,2000,3000")
    args = ap.parse_args()
    marks = [int(s) for s in args.steps.split(",")]
    if any(m <= 0 for m in marks) or marks != sorted(set(marks)):
        ap.error("--steps: ascending positive step counts")

    peer = load_peer(args.peer)
    torch, F = peer.torch, peer.F
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    chars, train, val = peer.load_corpus(args.corpus or peer.DEFAULT_CORPUS)
    V = len(chars)
    # as train_budget: model and optimiser, then batches from seed + 1
    model = peer.Generator(V, 64, 256)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step_gen = torch.Generator().manual_seed(args.seed + 1)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} seed={args.seed} "
          f"lr={args.lr}", flush=True)
    step, train_s = 0, 0.0
    for mark in marks:
        t0 = time.perf_counter()
        while step < mark:
            (x, y), = peer.make_batches(train, 1, 32, 64, step_gen)
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        train_s += time.perf_counter() - t0
        bpc, _ = peer.eval_bpc_stateful(model, val)
        print(f"step {step} train_s {train_s:.1f} val_bpc {bpc:.4f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
