"""Reference for upsampling a prediction to the original mask size (developers only).

    pyenv/bin/python scripts/make_resize_fixtures.py

Writes tests/fixtures/resize_nearest_exact.json: random binary masks (model resolution) and the
original sizes they are resized to with torch.nn.functional.interpolate(mode="nearest-exact"),
PyTorch's pixel-centre nearest (the same rule as PIL's NEAREST), as row-major 0/1 strings.
Sizes cover up- and down-scaling, integer and non-integer ratios, and the CIDAS case 352 →
typical medical originals.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(0)

cases = []
for (h, w), (oh, ow) in [
    ((7, 5), (10, 13)),
    ((10, 10), (7, 3)),
    ((16, 16), (48, 48)),
    ((24, 24), (37, 53)),
    ((352, 352), (400, 530)),
    ((352, 352), (331, 290)),
    ((96, 96), (33, 250)),
    ((5, 9), (5, 9)),
]:
    m = rng.random((h, w)) < 0.4
    t = torch.from_numpy(m.astype(np.float32))[None, None]
    r = F.interpolate(t, size=(oh, ow), mode="nearest-exact")[0, 0].numpy() > 0.5
    floor_nearest = F.interpolate(t, size=(oh, ow), mode="nearest")[0, 0].numpy() > 0.5
    cases.append(
        {
            "height": h,
            "width": w,
            "out_height": oh,
            "out_width": ow,
            "mask": "".join("1" if v else "0" for v in m.ravel()),
            "nearest_exact": "".join("1" if v else "0" for v in r.ravel()),
            "differs_from_floor_nearest": bool((r != floor_nearest).any()),
        }
    )

out = os.path.join(ROOT, "tests", "fixtures", "resize_nearest_exact.json")
with open(out, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(f"wrote {len(cases)} cases to {out}")
