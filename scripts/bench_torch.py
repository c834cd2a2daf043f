"""PyTorch reference timing of the workloads `vlsm-zoo time` measures (developers only).

HF CLIPSegForImageSegmentation with the CIDAS/clipseg-rd64-refined configuration and random
weights, 352x352, float32, default attention; the adapters written as in the reference code
(the VLSM-Adapter reference code: frozen CLIPSeg, the forward re-written piece by piece):
  dense_vl      DA-VL: Adapter(768|512, 64) after attention and MLP in blocks 0..8 of both towers,
                all 12 blocks run (the reference loops over every block)
  shallow_vlc   SA-VLC: Adapter(768, 512) on the taps, Adapter(512, 512) on the text EOS states,
                Adapter(512, 256) on the conditional embedding
  decoder_only  the frozen CLIP, the decoder trained
  lora          LoRA side branches (rank 8, alpha 16: x·W + (alpha/r)·(x·A)·B) on q/k/v/out of
                every block of both towers, the rest frozen (the DA forward without adapters)
  full          everything trained (the DA forward without adapters: HF's own forward runs the
                vision tower under no_grad)
  infer         the plain model, forward only (inference_mode)
A training step is forward, loss (1.5·Dice + BCE, as vlsm-zoo's dice_bce), backward,
clip_grad_norm_(1.0), AdamW(lr 1e-4), like `vlsm-zoo time`. One process per call; prints a
markdown row: workload | device | batch | s/step | s/img | peak RSS MiB | device peak MiB. Several
workloads and batches (and `--both`: float32, then autocast) run in one process, one row each.

    python scripts/bench_torch.py dense_vl --device cuda --batch 8
    python scripts/bench_torch.py infer --device cpu --batch 1 --threads 2
    python scripts/bench_torch.py dense_vl shallow_vlc --device cuda --batch 32 8 --both
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch
from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_adapter import Adapter  # noqa: E402


def cidas_model():
    config = CLIPSegConfig(
        extract_layers=[3, 6, 9], reduce_dim=64, projection_dim=512, conditional_layer=0,
        decoder_num_attention_heads=4, decoder_intermediate_size=2048, use_complex_transposed_convolution=True,
        text_config=dict(bos_token_id=0, eos_token_id=2), vision_config=dict(patch_size=16),
    )
    return CLIPSegForImageSegmentation(config)


def causal_mask(t, device):
    return torch.full((t, t), torch.finfo(torch.float32).min, device=device).triu(1)[None, None]


def block(layer, x, mask, attn_adapter, out_adapter):
    h = layer.self_attn(hidden_states=layer.layer_norm1(x), attention_mask=mask)[0]
    x = x + (attn_adapter(h) if attn_adapter is not None else h)
    h = layer.mlp(layer.layer_norm2(x))
    return x + (out_adapter(h) if out_adapter is not None else h)


class DenseVL(torch.nn.Module):
    def __init__(self, model, dim=64):
        super().__init__()
        self.model, n = model, max(model.extract_layers)
        self.n = n
        self.v_attn = torch.nn.ModuleList([Adapter(768, dim) for _ in range(n)])
        self.v_out = torch.nn.ModuleList([Adapter(768, dim) for _ in range(n)])
        self.l_attn = torch.nn.ModuleList([Adapter(512, dim) for _ in range(n)])
        self.l_out = torch.nn.ModuleList([Adapter(512, dim) for _ in range(n)])

    def forward(self, pixels, ids):
        clip, n = self.model.clip, self.n
        x = clip.vision_model.pre_layrnorm(clip.vision_model.embeddings(pixels, interpolate_pos_encoding=True))
        states = [x]
        for i, layer in enumerate(clip.vision_model.encoder.layers):
            a = (self.v_attn[i], self.v_out[i]) if i < n else (None, None)
            x = block(layer, x, None, *a)
            states.append(x)
        taps = [states[i + 1] for i in self.model.extract_layers]
        t = clip.text_model.embeddings(input_ids=ids)
        mask = causal_mask(ids.shape[1], ids.device)
        for i, layer in enumerate(clip.text_model.encoder.layers):
            a = (self.l_attn[i], self.l_out[i]) if i < n else (None, None)
            t = block(layer, t, mask, *a)
        t = clip.text_model.final_layer_norm(t)
        cond = clip.text_projection(t[torch.arange(t.shape[0]), ids.argmax(-1)])
        return self.model.decoder(taps, cond).logits


class ShallowVLC(torch.nn.Module):
    def __init__(self, model, dim=512, cond_hidden=256):
        super().__init__()
        self.model = model
        self.v = torch.nn.ModuleList([Adapter(768, dim) for _ in model.extract_layers])
        self.t = torch.nn.ModuleList([Adapter(512, dim) for _ in model.extract_layers])
        self.c = Adapter(512, cond_hidden)

    def forward(self, pixels, ids):
        clip, layers = self.model.clip, self.model.extract_layers
        vh = clip.vision_model(pixels, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states
        taps = [self.v[j](vh[e + 1]) for j, e in enumerate(layers)]
        out = clip.text_model(input_ids=ids, output_hidden_states=True)
        cond = self.c(clip.text_projection(out.pooler_output))
        eos = ids.argmax(-1)
        for j, e in enumerate(layers):
            cond = cond + self.t[j](out.hidden_states[e + 1][torch.arange(ids.shape[0]), eos])
        return self.model.decoder(taps, cond).logits


class DecoderOnly(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        model.decoder.requires_grad_(True)

    def forward(self, pixels, ids):
        return self.model(pixel_values=pixels, input_ids=ids).logits


class Full(DenseVL):
    """Everything trained. HF's own forward runs the vision tower under no_grad, so this is the
    reference's piece-by-piece forward (as DenseVL) without adapters."""

    def __init__(self, model):
        super().__init__(model, dim=1)
        self.v_attn = self.v_out = self.l_attn = self.l_out = None
        self.n = 0
        model.requires_grad_(True)


class LoraLinear(torch.nn.Module):
    """A frozen Linear plus a trainable side branch (A: Kaiming-uniform, B: zeros)."""

    def __init__(self, base, rank=8, alpha=16.0):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.a = torch.nn.Parameter(torch.empty(rank, base.in_features))
        self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank))
        torch.nn.init.kaiming_uniform_(self.a, a=5 ** 0.5)

    def forward(self, x):
        return self.base(x) + self.scale * ((x @ self.a.t()) @ self.b.t())


class Lora(DenseVL):
    def __init__(self, model):
        super().__init__(model, dim=1)
        self.v_attn = self.v_out = self.l_attn = self.l_out = None
        self.n = 0
        for tower in (model.clip.vision_model, model.clip.text_model):
            for layer in tower.encoder.layers:
                for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    setattr(layer.self_attn, name, LoraLinear(getattr(layer.self_attn, name)))


def loss_fn(logits, target):
    p = torch.sigmoid(logits).flatten(1)
    g = target.flatten(1)
    dice = 1 - (2 * (p * g).sum(1) + 1e-5) / (p.sum(1) + g.sum(1) + 1e-5)
    return 1.5 * dice.mean() + torch.nn.functional.binary_cross_entropy_with_logits(logits.flatten(1), g)


def run_one(workload, dev, batch, steps, warmup, use_autocast):
    """Times one workload; returns its markdown row."""
    torch.manual_seed(0)
    model = cidas_model().to(dev)
    model.requires_grad_(False)
    pixels = torch.randn(batch, 3, 352, 352, device=dev)
    ids = torch.full((batch, 77), 49407, device=dev)
    ids[:, :15] = torch.tensor([49406, 637, 8675, 4481, 2522, 6833, 335, 267, 5677, 530, 1155, 539, 518, 2867, 49407])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.empty_cache()  # the earlier rows' cached blocks would count as this row's peak
        torch.cuda.reset_peak_memory_stats()
    half = torch.float16 if dev.type == "cuda" else torch.bfloat16
    autocast = lambda: torch.autocast(dev.type, dtype=half, enabled=use_autocast)
    scaler = torch.amp.GradScaler(dev.type, enabled=use_autocast and half == torch.float16)
    times = []
    if workload == "infer":
        model.eval()
        with torch.inference_mode(), autocast():
            for i in range(warmup + steps):
                t = time.perf_counter()
                model(pixel_values=pixels, input_ids=ids)
                sync()
                if i >= warmup:
                    times.append(time.perf_counter() - t)
    else:
        net = {"dense_vl": DenseVL, "shallow_vlc": ShallowVLC, "decoder_only": DecoderOnly, "lora": Lora, "full": Full}[workload](model).to(dev)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        target = (torch.rand(batch, 352, 352, device=dev) < 0.3).float()
        for i in range(warmup + steps):
            t = time.perf_counter()
            with autocast():
                logits = net(pixels, ids)
            loss = loss_fn(logits.float(), target)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    med = statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f"{torch.cuda.max_memory_reserved() / 2**20:.0f}" if dev.type == "cuda" else "-"
    amp = f" autocast {str(half).split('.')[-1]}" if use_autocast else ""
    return (f"| torch {torch.__version__} {workload}{amp} | {'Infer' if workload == 'infer' else 'Train'} | {dev} "
            f"| {batch} | {med:.4f} | {med / batch:.4f} | {rss:.0f} | {gpu} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="+", choices=["dense_vl", "shallow_vlc", "decoder_only", "lora", "full", "infer"],
                    help="one or more; several run one after the other in this process (one row each)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[8], help="one or more batch sizes")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    ap.add_argument("--autocast", action="store_true",
                    help="torch.autocast fp16 (CUDA; bf16 on the CPU) with a GradScaler, as the reference trained")
    ap.add_argument("--both", action="store_true", help="each row in float32, then under --autocast")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    modes = [False, True] if a.both else [a.autocast]
    # With several rows, the peak RSS column is the process's peak so far; the device column is
    # each row's own (the allocator's cache is emptied and its peak statistics reset per row).
    for use_autocast in modes:
        for batch in a.batch:
            for workload in a.workload:
                print(run_one(workload, dev, batch, a.steps, a.warmup, use_autocast), flush=True)


if __name__ == "__main__":
    main()
