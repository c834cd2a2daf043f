"""Generates the SAN parity fixtures tests/fixtures/tiny-clipseg/san_{weights,reference}.safetensors (run by
developers, never by CI; needs torch, transformers, safetensors).

    pyenv/bin/python scripts/make_san_fixtures.py

A PyTorch reference of SAN's side adapter network and recognition path, written from the
structure of SAN's own code (MendelXu/SAN: `side_adapter.py`, `layers.py`, `attn_helper.py`,
`clip_utils/visual.py`, `config.py`) with its default settings, on a tiny config and on the tiny
random CLIPSeg of tests/fixtures/tiny-clipseg (5 vision blocks of width 32, 4 heads):

  * side ViT (timm layout, pre-norm blocks, LayerNorm eps 1e-6, exact GELU, no final norm):
    queries and patches concatenated, position embeddings added before the first block and
    re-added after every block but the last; AddFusion (channel LayerNorm + 1x1 conv, bilinear
    resize) of CLIP states after the block it names in `fusion_map`;
  * MLPMaskDecoder: mask = einsum(query_mlp(q), pix_mlp(x)); attention bias =
    einsum(query_mlp(q), attn_mlp(x) per head) -> bias_scaling Linear(1, 1);
  * RecWithAttnbiasHead in SAN's default mode (REC_CROSS_ATTN False, SOS "cls_token",
    REC_DOWNSAMPLE_METHOD "max"): [sos; cls; patches] re-run CLIP's last blocks with the full
    additive mask (sos->sos -100 except itself, sos->cls -100, sos->patches = bias, image tokens
    -> sos -100), then CLIP's ln_post (post_layernorm) and proj (visual_projection), normalised;
  * scores against the prompt embedding with CLIP's logit scale (100), softmax over queries,
    the weighted sum of proposals, bilinear upsampling to the input size.

The side network's parameters are random (LayerNorm affines and the bias scaling too) and saved
under the `san` head's parameter names in PyTorch layout (san_weights); the outputs for the
input of reference.safetensors (attention bias, mask proposals, query embeddings, query weights,
logits) go to san_reference; the same with SAN's asymmetric input (CLIP on the image shrunk to half,
`clip_resolution: 0.5`, the side network on the image as given) to san_asym_reference.
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import CLIPSegForImageSegmentation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "tiny-clipseg")

# Must match TINY_SAN_PARITY in tests/san.rs.
WIDTH, DEPTH, HEADS, PATCH, QUERIES, EMBED, MLP_LAYERS = 32, 3, 2, 8, 6, 16, 3
FUSION_MAP = [(0, 0), (2, 1), (3, 2)]  # (clip state, side position)
REC_LAYERS = 2
CLIP_LOGIT_SCALE = 100.0


def rand(g, *shape, scale=0.2, base=0.0):
    return base + scale * torch.randn(*shape, generator=g)


def side_params(g, grid_tokens, clip_width, clip_heads):
    p = {}
    p["side.patch_embed.weight"] = rand(g, WIDTH, 3, PATCH, PATCH, scale=0.1)
    p["side.patch_embed.bias"] = rand(g, WIDTH)
    p["side.pos_embed"] = rand(g, grid_tokens, WIDTH, scale=0.5)
    p["side.query_embed"] = rand(g, QUERIES, WIDTH, scale=0.5)
    p["side.query_pos"] = rand(g, QUERIES, WIDTH, scale=0.5)
    for i in range(DEPTH):
        b = f"side.blocks.{i}"
        for n in ("norm1", "norm2"):
            p[f"{b}.{n}.weight"] = rand(g, WIDTH, scale=0.1, base=1.0)
            p[f"{b}.{n}.bias"] = rand(g, WIDTH, scale=0.1)
        p[f"{b}.attn.qkv.weight"] = rand(g, 3 * WIDTH, WIDTH)
        p[f"{b}.attn.qkv.bias"] = rand(g, 3 * WIDTH)
        p[f"{b}.attn.proj.weight"] = rand(g, WIDTH, WIDTH)
        p[f"{b}.attn.proj.bias"] = rand(g, WIDTH)
        p[f"{b}.mlp.fc1.weight"] = rand(g, 4 * WIDTH, WIDTH)
        p[f"{b}.mlp.fc1.bias"] = rand(g, 4 * WIDTH)
        p[f"{b}.mlp.fc2.weight"] = rand(g, WIDTH, 4 * WIDTH)
        p[f"{b}.mlp.fc2.bias"] = rand(g, WIDTH)
    for k in range(len(FUSION_MAP)):
        p[f"fusion.{k}.norm.weight"] = rand(g, clip_width, scale=0.1, base=1.0)
        p[f"fusion.{k}.norm.bias"] = rand(g, clip_width, scale=0.1)
        p[f"fusion.{k}.proj.weight"] = rand(g, WIDTH, clip_width)
        p[f"fusion.{k}.proj.bias"] = rand(g, WIDTH)
    for name, out in (("query_mlp", EMBED), ("pix_mlp", EMBED), ("attn_mlp", EMBED * clip_heads)):
        dims = [WIDTH] + [EMBED] * (MLP_LAYERS - 1) + [out]
        for j in range(MLP_LAYERS):
            p[f"decoder.{name}.layers.{j}.weight"] = rand(g, dims[j + 1], dims[j], scale=0.15)
            p[f"decoder.{name}.layers.{j}.bias"] = rand(g, dims[j + 1])
    p["decoder.bias_scale"] = torch.tensor([0.7])
    p["decoder.bias_shift"] = torch.tensor([-0.3])
    return p


def vit_block(p, b, x):
    """timm's Block: x + attn(norm1 x), then + mlp(norm2 x)."""
    h = F.layer_norm(x, (WIDTH,), p[f"{b}.norm1.weight"], p[f"{b}.norm1.bias"], 1e-6)
    n, t, _ = h.shape
    qkv = F.linear(h, p[f"{b}.attn.qkv.weight"], p[f"{b}.attn.qkv.bias"])
    qkv = qkv.reshape(n, t, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    a = (q * (WIDTH // HEADS) ** -0.5) @ k.transpose(-2, -1)
    o = (a.softmax(-1) @ v).transpose(1, 2).reshape(n, t, WIDTH)
    x = x + F.linear(o, p[f"{b}.attn.proj.weight"], p[f"{b}.attn.proj.bias"])
    h = F.layer_norm(x, (WIDTH,), p[f"{b}.norm2.weight"], p[f"{b}.norm2.bias"], 1e-6)
    h = F.linear(F.gelu(F.linear(h, p[f"{b}.mlp.fc1.weight"], p[f"{b}.mlp.fc1.bias"])),
                 p[f"{b}.mlp.fc2.weight"], p[f"{b}.mlp.fc2.bias"])
    return x + h


def channel_layer_norm(y, w, b, eps=1e-6):
    """SAN's layers.LayerNorm over the channels of [N, C, H, W]."""
    u = y.mean(1, keepdim=True)
    s = (y - u).pow(2).mean(1, keepdim=True)
    y = (y - u) / torch.sqrt(s + eps)
    return w[:, None, None] * y + b[:, None, None]


def add_fusion(p, k, x, clip_state, spatial):
    """AddFusion: x [N, L, C] + resize(conv1x1(LN(y))) with y the CLIP state [N, C', h, w]."""
    y = channel_layer_norm(clip_state, p[f"fusion.{k}.norm.weight"], p[f"fusion.{k}.norm.bias"])
    y = F.conv2d(y, p[f"fusion.{k}.proj.weight"][:, :, None, None], p[f"fusion.{k}.proj.bias"])
    y = F.interpolate(y, size=spatial, mode="bilinear", align_corners=False)
    return x + y.permute(0, 2, 3, 1).reshape(x.shape)


def mlp(p, name, x, conv):
    for j in range(MLP_LAYERS):
        w, b = p[f"decoder.{name}.layers.{j}.weight"], p[f"decoder.{name}.layers.{j}.bias"]
        x = F.conv2d(x, w[:, :, None, None], b) if conv else F.linear(x, w, b)
        if j < MLP_LAYERS - 1:
            x = F.relu(x)
    return x


def side_network(p, image, clip_states):
    """RegionwiseSideAdapterNetwork.forward_features + MLPMaskDecoder on the last block."""
    x = F.conv2d(image, p["side.patch_embed.weight"], p["side.patch_embed.bias"], stride=PATCH)
    n, _, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    L = h * w
    pos = torch.cat([p["side.query_pos"][None].expand(n, -1, -1), p["side.pos_embed"][None].expand(n, -1, -1)], 1)
    x = torch.cat([p["side.query_embed"][None].expand(n, -1, -1), x], 1) + pos
    fusion = {pos_: (k, state) for k, (state, pos_) in enumerate(FUSION_MAP)}

    def fuse(i, x):
        if i in fusion:
            k, state = fusion[i]
            x = torch.cat([x[:, :-L], add_fusion(p, k, x[:, -L:], clip_states[state], (h, w))], 1)
        return x

    x = fuse(0, x)
    for i in range(1, DEPTH + 1):
        x = vit_block(p, f"side.blocks.{i - 1}", x)
        x = fuse(i, x)
        if i < DEPTH:
            x = x + pos
    query, feat = x[:, :-L], x[:, -L:].permute(0, 2, 1).reshape(n, WIDTH, h, w)
    # MLPMaskDecoder
    q = mlp(p, "query_mlp", query, conv=False)
    pix = mlp(p, "pix_mlp", feat, conv=True)
    masks = torch.einsum("bqc,bchw->bqhw", q, pix)
    attn = mlp(p, "attn_mlp", feat, conv=True)
    heads = attn.shape[1] // EMBED
    attn = attn.reshape(n, 1, heads, EMBED, h, w)
    bias = torch.einsum("bqc,blnchw->blnqhw", q, attn)
    bias = (bias[..., None] * p["decoder.bias_scale"] + p["decoder.bias_shift"]).squeeze(-1)
    return masks, bias[:, 0], (h, w)  # bias: [N, heads, Q, h, w]


def clip_block_with_mask(layer, x, mask):
    """One HF CLIPSeg encoder layer on [N, T, D] with a per-head additive mask [N, H, T, T]."""
    attn = layer.self_attn
    n, t, d = x.shape
    hd = d // attn.num_heads
    h = layer.layer_norm1(x)
    q = (attn.q_proj(h) * hd ** -0.5).reshape(n, t, attn.num_heads, hd).transpose(1, 2)
    k = attn.k_proj(h).reshape(n, t, attn.num_heads, hd).transpose(1, 2)
    v = attn.v_proj(h).reshape(n, t, attn.num_heads, hd).transpose(1, 2)
    a = (q @ k.transpose(-2, -1) + mask).softmax(-1)
    x = x + attn.out_proj((a @ v).transpose(1, 2).reshape(n, t, d))
    return x + layer.mlp(layer.layer_norm2(x))


def recognition(model, states, bias, clip_grid):
    """RecWithAttnbiasHead.forward, non-cross-attention mode, normalize=True."""
    vision = model.clip.vision_model
    blocks = vision.encoder.layers
    first = len(blocks) - REC_LAYERS
    x = states[first]  # [N, 1 + L, D]: input of the first re-run block
    n, _, d = x.shape
    heads, nq = bias.shape[1], bias.shape[2]
    b = F.adaptive_max_pool2d(bias.reshape(n, heads * nq, *bias.shape[-2:]), clip_grid)
    b = b.reshape(n, heads, nq, -1)
    L = b.shape[-1]
    full = torch.zeros(nq + 1 + L, nq + 1 + L)
    full[:, :nq] = -100
    full[torch.arange(nq), torch.arange(nq)] = 0
    full[:nq, nq] = -100
    full = full[None, None].expand(n, heads, -1, -1).clone()
    full[..., :nq, -L:] = b
    sos = x[:, :1].expand(-1, nq, -1)
    seq = torch.cat([sos, x], 1)
    for layer in blocks[first:]:
        seq = clip_block_with_mask(layer, seq, full)
    sos = vision.post_layernorm(seq[:, :nq])
    return model.clip.visual_projection(sos)


def san_forward(model, p, pixels, cond, clip_resolution):
    """SAN.forward for one prompt per image: CLIP on the image scaled by `clip_resolution`
    (SAN's ASYMETRIC_INPUT: `F.interpolate(x, scale_factor=clip_resolution, mode="bilinear")`),
    the side network on the image as given."""
    clip_pixels = pixels
    if clip_resolution != 1.0:
        clip_pixels = F.interpolate(pixels, scale_factor=clip_resolution, mode="bilinear")
    out = model.clip.vision_model(clip_pixels, output_hidden_states=True, interpolate_pos_encoding=True)
    states = out.hidden_states  # [0] = after pre_layrnorm, [i] = output of block i - 1
    clip_grid = (clip_pixels.shape[2] // 16, clip_pixels.shape[3] // 16)
    spatial = {i: s[:, 1:].transpose(1, 2).reshape(s.shape[0], s.shape[2], *clip_grid)
               for i, s in enumerate(states)}
    masks, bias, side_grid = side_network(p, pixels, spatial)
    emb = recognition(model, states, bias, clip_grid)
    cos = F.normalize(emb, dim=-1) @ F.normalize(cond, dim=-1)[:, :, None]
    weights = (CLIP_LOGIT_SCALE * cos[..., 0]).softmax(-1)
    mix = torch.einsum("bq,bqhw->bhw", weights, masks)[:, None]
    logits = F.interpolate(mix, size=pixels.shape[-2:], mode="bilinear", align_corners=False)
    n, heads, nq = bias.shape[:3]
    print("clip resolution", clip_resolution, "side grid", side_grid, "clip grid", clip_grid,
          "logits range", float(logits.min()), float(logits.max()), "max weight", float(weights.max()))
    return {
        "masks": masks.reshape(n, nq, -1),
        "attn_bias": bias.reshape(n, heads, nq, -1),
        "embeddings": emb,
        "weights": weights,
        "logits": logits,
    }


def main():
    torch.manual_seed(0)
    model = CLIPSegForImageSegmentation.from_pretrained(FIX).eval()
    ref = load_file(os.path.join(FIX, "reference.safetensors"))
    pixels = ref["pixel_values"]
    cond = ref["cond"]  # CLIPSeg's conditional embedding of the prompts (HF, with the attention mask)
    with torch.no_grad():
        clip_width = model.config.vision_config.hidden_size
        g = torch.Generator().manual_seed(7)
        p = side_params(g, (pixels.shape[2] // PATCH) * (pixels.shape[3] // PATCH),
                        clip_width, model.config.vision_config.num_attention_heads)
        same = san_forward(model, p, pixels, cond, 1.0)
        # SAN's default asymmetric input: CLIP at half the side network's resolution.
        half = san_forward(model, p, pixels, cond, 0.5)
    save_file({k: v.contiguous() for k, v in p.items()}, os.path.join(FIX, "san_weights.safetensors"))
    save_file({k: v.contiguous() for k, v in same.items()}, os.path.join(FIX, "san_reference.safetensors"))
    save_file({k: v.contiguous() for k, v in half.items()},
              os.path.join(FIX, "san_asym_reference.safetensors"))


if __name__ == "__main__":
    main()
