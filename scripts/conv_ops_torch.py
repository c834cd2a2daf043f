"""PyTorch side of `cargo run --release -p vlsm-zoo-cli --example conv_ops`: the same CRIS-R50
convolution shapes, forward, forward + input gradient, forward + weight gradient (median ms).

    python scripts/conv_ops_torch.py [--threads 2]
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [
    (2, 32, 208, 32, 3, 1),
    (2, 32, 208, 64, 3, 1),
    (2, 64, 104, 64, 3, 1),
    (2, 256, 104, 64, 1, 1),
    (2, 64, 104, 256, 1, 1),
    (2, 128, 104, 128, 3, 1),
    (2, 256, 26, 256, 3, 1),
    (2, 512, 26, 512, 3, 1),
    (2, 1024, 26, 256, 1, 1),
    (2, 512, 13, 512, 3, 1),
]


def timed(f, reps=5):
    f()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| shape | fwd ms | fwd+dx ms | fwd+dw ms |")
    for b, ci, s, co, k, st in SHAPES:
        x = torch.rand(b, ci, s, s)
        w = torch.rand(co, ci, k, k)

        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, stride=st, padding=k // 2)

        def grad(x_grad):
            xa = x.clone().requires_grad_(x_grad)
            wa = w.clone().requires_grad_(not x_grad)
            F.conv2d(xa, wa, stride=st, padding=k // 2).sum().backward()

        print(f"| {b}x{ci}x{s}² → {co} k{k} s{st} | {timed(fwd):.2f} | {timed(lambda: grad(True)):.2f} | {timed(lambda: grad(False)):.2f} |")


if __name__ == "__main__":
    main()
