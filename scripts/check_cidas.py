"""Full-size check for users who hold the CIDAS weights (developers and users; needs torch and
transformers, never run by CI).

    pyenv/bin/python scripts/check_cidas.py weights/CIDAS/clipseg-rd64-refined
    VLSM_CIDAS_DIR=weights/CIDAS/clipseg-rd64-refined cargo test -p vlsm-zoo-tests --test parity cidas

Runs transformers' CLIPSegForImageSegmentation from the folder at 352² on a deterministic
synthetic image and a few real prompts (both padding styles of the CLIP tokenizer: short and
long prompts padded to 77), and writes the inputs, the decoder taps, the conditional embedding
and the logits to <folder>/vlsm_zoo_check.safetensors (or --out). The Rust test then loads the
same folder with our port and requires every tensor within 1e-4.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, CLIPSegForImageSegmentation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import reference  # noqa: E402

PROMPTS = [
    "polyp",
    "one medium pink round polyp, located in the upper left of the image",
    "a bright lesion with an irregular border on the skin",
]


def image(size=352):
    """A deterministic test picture: a soft pink disc on a textured background."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    base = 90 + 40 * np.sin(xx / 17.0)[..., None] + rng.normal(0, 8, (size, size, 3))
    disc = ((yy - 120) ** 2 + (xx - 140) ** 2) < 60**2
    base[disc] = [220, 130, 150]
    return np.clip(base, 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--out")
    args = ap.parse_args()
    model = CLIPSegForImageSegmentation.from_pretrained(args.folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.folder)
    # The image is made at the model size, so preprocessing is only CIDAS's rescale + normalise
    # (from the folder's preprocessor_config.json; no image library needed).
    pre = json.load(open(os.path.join(args.folder, "preprocessor_config.json")))
    mean = np.array(pre["image_mean"], np.float32)
    std = np.array(pre["image_std"], np.float32)
    size = pre["size"]["height"] if isinstance(pre["size"], dict) else pre["size"]
    picture = (image(size).astype(np.float32) * np.float32(pre.get("rescale_factor", 1 / 255)) - mean) / std
    pixels = torch.from_numpy(picture).permute(2, 0, 1)[None].repeat(len(PROMPTS), 1, 1, 1).contiguous()
    enc = tokenizer(PROMPTS, max_length=77, truncation=True, padding="max_length", return_tensors="pt")
    ref = reference(model, pixels, enc["input_ids"], enc["attention_mask"])
    out = args.out or os.path.join(args.folder, "vlsm_zoo_check.safetensors")
    save_file(ref, out)
    print(f"wrote {out}: logits {tuple(ref['logits'].shape)}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
