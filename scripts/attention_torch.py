"""PyTorch's side of `cargo run --release -p vlsm-zoo-cli --example block_ops`'s attention rows:
12-head self-attention at CLIP's vision-block shape ([8, 12, 485, 64], q = k = v), forward plus
the input gradient through `scaled_dot_product_attention` and through the composition
softmax(scale · Q Kᵗ) V, and the forward alone; median of 7, in ms. Developers only.

    pyenv/bin/python scripts/attention_torch.py [--threads 2]
"""
import argparse
import time

import torch


def median_ms(f, n=7):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(8, 12, 485, 64)

    def sdpa_with_gradient():
        q = x.clone().requires_grad_()
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()

    def composition_with_gradient():
        q = x.clone().requires_grad_()
        scores = (q * 0.125) @ q.transpose(-1, -2)
        (scores.softmax(-1) @ q).sum().backward()

    def sdpa_forward():
        with torch.inference_mode():
            torch.nn.functional.scaled_dot_product_attention(x, x, x)

    print("| op | ms |")
    print("|---|---|")
    print(f"| sdpa, forward + input gradient | {median_ms(sdpa_with_gradient):.2f} |")
    print(f"| composition, forward + input gradient | {median_ms(composition_with_gradient):.2f} |")
    print(f"| sdpa, forward only (inference mode) | {median_ms(sdpa_forward):.2f} |")


if __name__ == "__main__":
    main()
