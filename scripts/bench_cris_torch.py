"""PyTorch reference timing of a CRIS-R50 training step or forward pass, the workload
`vlsm-zoo time --spec specs/paper/cris.ron` measures (developers only; needs torch).

    python scripts/bench_cris_torch.py PATH_TO_CRIS_CODE [--batch 2] [--threads 2] [--infer | --frozen-backbone]

Builds the full CRIS-R50 (CLIP RN50 + FPN + decoder + projector, 146,849,122 parameters) from
the original classes in PATH_TO_CRIS_CODE/model (imported by path, random weights), float32,
416x416 inputs and 77-token prompts. A training step is forward (train mode: batch statistics,
dropout 0.2), medvlsm's bicubic resize to 416, loss 1.5·Dice + BCE-with-logits (vlsm-zoo's
`dice_bce`), backward, clip_grad_norm_(1.0) and AdamW(lr 1e-4) over every parameter, like
`vlsm-zoo time`. Prints a markdown row in `vlsm-zoo time --row`'s columns: workload | Train or
Infer | device | batch | s/step | s/img | peak RSS MiB.
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def build(path):
    sys.path.insert(0, os.path.abspath(path))
    from model.clip import CLIP
    from model.layers import FPN, Projector, TransformerDecoder
    from model.segmenter import CRIS

    class FullCRIS(CRIS):
        def __init__(self):
            nn.Module.__init__(self)
            self.backbone = CLIP(1024, 224, (3, 4, 6, 3), 64, None, 77, 77, 49408, 512, 8, 12)
            self.neck = FPN([512, 1024, 1024], [256, 512, 1024])
            self.decoder = TransformerDecoder(3, 512, 8, 2048, 0.2, False)
            self.proj = Projector(1024, 256, 3)

        def logits(self, img, word):
            pad_mask = word == 0
            vis = self.backbone.encode_image(img)
            words, state = self.backbone.encode_text(word)
            fq = self.neck(vis, state)
            b, c, h, w = fq.shape
            fq = self.decoder(fq, words, pad_mask).reshape(b, c, h, w)
            pred = self.proj(fq, state)
            return F.interpolate(pred, 416, mode="bicubic", align_corners=True)

    return FullCRIS()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("code")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--infer", action="store_true")
    ap.add_argument("--frozen-backbone", action="store_true",
                    help="train only neck, decoder and projector; the backbone in eval mode (vlsm-zoo's decoder-only)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.code)
    n = sum(p.numel() for p in model.parameters())
    assert n == 146_849_122, n
    img = torch.randn(a.batch, 3, 416, 416)
    ids = torch.randint(1, 49406, (a.batch, 77))
    ids[:, 0], ids[:, 10:] = 49406, 49407
    mask = (torch.rand(a.batch, 1, 416, 416) > 0.5).float()
    if a.frozen_backbone:
        model.backbone.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-4)

    def step():
        if a.infer:
            model.eval()
            with torch.inference_mode():
                model.logits(img, ids)
            return
        model.train()
        if a.frozen_backbone:
            model.backbone.eval()
        logits = model.logits(img, ids)
        p = torch.sigmoid(logits)
        inter = (p * mask).sum((1, 2, 3))
        dice = 1 - (2 * inter) / (p.sum((1, 2, 3)) + mask.sum((1, 2, 3)) + 1e-5)
        loss = 1.5 * dice.mean() + F.binary_cross_entropy_with_logits(logits, mask)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    s = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    work = "cris infer" if a.infer else ("cris head-only step" if a.frozen_backbone else "cris full step")
    kind = "Infer" if a.infer else "Train"
    print(f"| PyTorch {torch.__version__} {work} | {kind} | cpu | {a.batch} | {s:.3f} | {s / a.batch:.3f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
