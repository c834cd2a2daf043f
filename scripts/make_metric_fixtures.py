"""Checks our DSC / IoU / HD95 definitions against monai on random masks (developers only).

    pyenv/bin/pip install monai scipy
    pyenv/bin/python scripts/make_metric_fixtures.py

Writes tests/fixtures/metrics_monai.json: a list of {height, width, pred, gt (row-major 0/1
strings), dice, iou, hd95 (null when monai gives NaN or inf)} computed with
monai.metrics.compute_dice / compute_iou (ignore_empty=False) and
compute_hausdorff_distance(percentile=95).
"""
import json
import os

import monai
import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(0)


def blob(h, w):
    m = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(2, max(3, h // 3)), rng.integers(2, max(3, w // 3))
        yy, xx = np.ogrid[:h, :w]
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    if rng.random() < 0.3:
        m = ndimage.binary_dilation(m, iterations=int(rng.integers(1, 3)))
    return m


cases = []
for i in range(40):
    h, w = int(rng.integers(8, 60)), int(rng.integers(8, 60))
    gt = blob(h, w)
    pred = blob(h, w) if rng.random() < 0.5 else ndimage.shift(gt.astype(float), rng.integers(-3, 4, 2), order=0) > 0.5
    if i == 0:
        pred = np.zeros_like(gt)
    if i == 1:
        gt = np.zeros_like(gt)
    if i == 2:
        pred, gt = np.zeros_like(gt), np.zeros_like(gt)
    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    hd = compute_hausdorff_distance(p, g, percentile=95).item()
    cases.append({
        "height": h, "width": w,
        "pred": "".join("1" if v else "0" for v in pred.ravel()),
        "gt": "".join("1" if v else "0" for v in gt.ravel()),
        "dice": compute_dice(p, g, ignore_empty=False).item(),
        "iou": compute_iou(p, g, ignore_empty=False).item(),
        "hd95": hd if np.isfinite(hd) else None,
    })
out = os.path.join(ROOT, "tests", "fixtures", "metrics_monai.json")
json.dump({"monai": monai.__version__, "cases": cases}, open(out, "w"), indent=0)
print(f"wrote {len(cases)} cases to {out}")
