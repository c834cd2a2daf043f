"""Generates the CRIS parity fixtures under tests/fixtures/tiny-cris/ (run by developers, never by
CI; needs torch and safetensors):

    pyenv/bin/python scripts/make_cris_fixtures.py PATH_TO_REFERENCE_CODE

PATH_TO_REFERENCE_CODE is the folder holding the original CRIS `model/` package (`clip.py`,
`layers.py`, `segmenter.py`, MIT), e.g. ../shared/reference-code/cris. Nothing of it is copied:
the classes are imported from there.

Builds a tiny random CRIS from the original classes (the recipe of the porting notes: CLIP
ModifiedResNet of width 4 and layers (1, 2, 1, 1), text transformer 32 wide with 2 blocks and
4 heads, word length 8, vocabulary 64; FPN [32, 64, 32] -> [16, 32, 64]; a 2-layer decoder of
width 32, 4 heads, FFN 64; projector 32 -> 16, kernel 3; 96-px input), randomises every
BatchNorm's affine and running statistics (near the activations' own, so eval values stay
moderate) and every LayerNorm's affine, and writes

  config.json             the constructor arguments (what the `cris-clip` backbone and the `cris`
                          head read)
  model.safetensors       the state dict with the reference's exact keys (`backbone.…`,
                          `neck.…`, `decoder.…`, `proj.…`; packed `in_proj_weight`s,
                          `num_batches_tracked` and `logit_scale` included, as real checkpoints)
  ../tiny-cris-pth/      the same weights as `cris_best.pth` ({"state_dict": {"module.<key>": …}},
                          the community checkpoint's layout) with config.json
  ../tiny-cris-ckpt/     the same weights as a Lightning `last.ckpt` (`net.` prefix under
                          `state_dict`, next to epoch/global_step/hyper_parameters)
  reference.safetensors   inputs (pixels [2, 3, 96, 96], ids [2, 8]) and, in eval mode, the stem,
                          layer1-4, C5 (attnpool), word features and sentence state, the neck
                          output, each decoder layer, the decoder output, the projector's visual
                          path, its dynamic kernel, its prediction and the logits (medvlsm's
                          bicubic resize to the input size, align_corners=True); plus a
                          training-mode forward with dropout 0 (batch statistics in every
                          BatchNorm) and two running statistics after it.

The ids are [[62, 5, 9, 0, 63, 0, 0, 0], [62, 7, 63, 63, 63, 63, 63, 63]]: row 0 pads with 0
(the original CRIS style, so the decoder's key padding mask masks those words) and row 1 pads
with the end token (HF style, as medvlsm: nothing is masked). 63 is the end token, the row max.
"""
import copy
import json
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tiny-cris")

CONFIG = {
    "clip": {
        "embed_dim": 32,
        "image_resolution": 64,
        "vision_layers": [1, 2, 1, 1],
        "vision_width": 4,
        "context_length": 16,
        "txt_length": 8,
        "vocab_size": 64,
        "transformer_width": 32,
        "transformer_heads": 4,
        "transformer_layers": 2,
    },
    "fpn_in": [32, 64, 32],
    "fpn_out": [16, 32, 64],
    "vis_dim": 32,
    "word_dim": 32,
    "num_layers": 2,
    "num_head": 4,
    "dim_ffn": 64,
    "dropout": 0.2,
    "img_size": 96,
}
IDS = [[62, 5, 9, 0, 63, 0, 0, 0], [62, 7, 63, 63, 63, 63, 63, 63]]


def build(CRIS, CLIP, FPN, TransformerDecoder, Projector):
    class TinyCRIS(CRIS):
        def __init__(self):
            nn.Module.__init__(self)
            c = CONFIG["clip"]
            self.img_size = CONFIG["img_size"]
            self.backbone = CLIP(c["embed_dim"], c["image_resolution"], tuple(c["vision_layers"]),
                                 c["vision_width"], None, c["context_length"], c["txt_length"],
                                 c["vocab_size"], c["transformer_width"], c["transformer_heads"],
                                 c["transformer_layers"])
            self.neck = FPN(in_channels=CONFIG["fpn_in"], out_channels=CONFIG["fpn_out"])
            self.decoder = TransformerDecoder(num_layers=CONFIG["num_layers"], d_model=CONFIG["vis_dim"],
                                              nhead=CONFIG["num_head"], dim_ffn=CONFIG["dim_ffn"],
                                              dropout=CONFIG["dropout"], return_intermediate=False)
            self.proj = Projector(CONFIG["word_dim"], CONFIG["vis_dim"] // 2, 3)

    return TinyCRIS()


def randomize(model, g, pixels, ids):
    """Random weights, then BatchNorm running statistics near the activations' own (a few
    training-mode passes with a cumulative average, then jittered), so that eval-mode values
    stay O(1-10) and the 1e-4 tolerance is meaningful; random BN and LN affines."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 and "embedding" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan_in ** 0.5))
            elif p.dim() == 1 and name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p, m.saved_p = 0.0, m.p
            if isinstance(m, nn.MultiheadAttention):
                m.dropout, m.saved_dropout = 0.0, m.dropout
        for _ in range(2):
            words, state = model.backbone.encode_text(ids)
            fq = model.neck(model.backbone.encode_image(pixels), state)
            b, c, h, w = fq.shape
            model.proj(model.decoder(fq, words, ids == 0).reshape(b, c, h, w), state)
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = m.saved_p
            if isinstance(m, nn.MultiheadAttention):
                m.dropout = m.saved_dropout
        for m in bns:
            m.momentum = 0.1
            m.num_batches_tracked.zero_()
            m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=g))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
            # dead (all-zero) channels would have variance 0; keep every variance >= 0.5
            m.running_var.clamp_(min=0.5).mul_(0.8 + 0.4 * torch.rand(m.running_var.shape, generator=g))
            m.running_mean.add_(0.1 * m.running_var.sqrt() * torch.randn(m.running_mean.shape, generator=g))
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))


def forward_with_taps(model, pixels, ids):
    """CRIS.forward's eval path, recording every intermediate the Rust tests compare."""
    taps = {}
    hooks = []

    def keep(name):
        def hook(_module, _inputs, output):
            taps[name] = output
        return hook

    v = model.backbone.visual
    for name, module in [("stem", v.avgpool), ("layer1", v.layer1), ("layer2", v.layer2),
                         ("layer3", v.layer3), ("layer4", v.layer4), ("c5", v.attnpool),
                         ("neck", model.neck), ("proj_vis", model.proj.vis),
                         ("proj_txt", model.proj.txt), ("pred", model.proj)]:
        hooks.append(module.register_forward_hook(keep(name)))
    for i, layer in enumerate(model.decoder.layers):
        hooks.append(layer.register_forward_hook(keep(f"decoder_layer{i}")))
    hooks.append(model.decoder.register_forward_hook(keep("decoder")))
    pred = model(pixels, ids)
    for h in hooks:
        h.remove()
    words, state = model.backbone.encode_text(ids)
    taps["words"], taps["state"] = words, state
    # medvlsm's CRIS (segmenter.py L105) resizes the prediction to the input size; the original
    # CRIS.pytorch forward stops at `pred`.
    taps["logits"] = torch.nn.functional.interpolate(pred, CONFIG["img_size"], mode="bicubic",
                                                     align_corners=True)
    # [HW, B, C] -> [B, HW, C] for the decoder layers
    for i in range(len(model.decoder.layers)):
        taps[f"decoder_layer{i}"] = taps[f"decoder_layer{i}"].permute(1, 0, 2)
    return taps


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.path.insert(0, os.path.abspath(sys.argv[1]))
    from model.clip import CLIP  # noqa: E402  (the reference code, imported by path)
    from model.layers import FPN, Projector, TransformerDecoder  # noqa: E402
    from model.segmenter import CRIS  # noqa: E402

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    model = build(CRIS, CLIP, FPN, TransformerDecoder, Projector)
    pixels = torch.randn(2, 3, CONFIG["img_size"], CONFIG["img_size"], generator=g)
    ids = torch.tensor(IDS)
    randomize(model, g, pixels, ids)
    model.eval()
    with torch.no_grad():
        taps = forward_with_taps(model, pixels, ids)

    # Training mode, dropout 0: every BatchNorm normalises with batch statistics and updates its
    # running statistics (momentum 0.1).
    train = copy.deepcopy(model)
    for m in train.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    train.train()
    with torch.no_grad():
        words, state = train.backbone.encode_text(ids)
        vis = train.backbone.encode_image(pixels)
        fq = train.neck(vis, state)
        b, c, h, w = fq.shape
        fq = train.decoder(fq, words, ids == 0).reshape(b, c, h, w)
        pred = train.proj(fq, state)
    taps["train_pred"] = pred
    taps["train_stem_bn1_running_mean"] = train.backbone.visual.bn1.running_mean
    taps["train_txt_proj_bn_running_var"] = train.neck.txt_proj[1].running_var

    os.makedirs(OUT, exist_ok=True)
    json.dump(CONFIG, open(os.path.join(OUT, "config.json"), "w"), indent=2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(OUT, "model.safetensors"))
    # The same weights as the community checkpoint stores them: a torch pickle with a
    # top-level `state_dict` whose keys carry DataParallel's `module.` prefix.
    os.makedirs(OUT + "-pth", exist_ok=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               os.path.join(OUT + "-pth", "cris_best.pth"))
    json.dump(CONFIG, open(os.path.join(OUT + "-pth", "config.json"), "w"), indent=2)
    # A Lightning-style fine-tuning checkpoint: `net.` prefix, other top-level entries.
    os.makedirs(OUT + "-ckpt", exist_ok=True)
    torch.save({"epoch": 3, "global_step": 120, "hyper_parameters": {"lr": 1e-4},
                "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()}},
               os.path.join(OUT + "-ckpt", "last.ckpt"))
    json.dump(CONFIG, open(os.path.join(OUT + "-ckpt", "config.json"), "w"), indent=2)
    ref = {"pixel_values": pixels, "input_ids": ids}
    ref.update(taps)
    save_file({k: v.detach().contiguous() for k, v in ref.items()},
              os.path.join(OUT, "reference.safetensors"))
    n = sum(p.numel() for p in model.parameters())
    print(f"{n} parameters; " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in ref.items()))


if __name__ == "__main__":
    main()
