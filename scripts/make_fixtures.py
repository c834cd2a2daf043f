"""Generates the HF-parity fixtures under tests/fixtures/ (run by developers, never by CI).

    python -m venv pyenv && pyenv/bin/pip install torch transformers open-clip-torch ftfy safetensors
    pyenv/bin/python scripts/make_fixtures.py

Writes:
  tiny-clipseg/        config.json + model.safetensors of a tiny random CLIPSegForImageSegmentation
                       (non-default sizes: vision 5 layers, text 4, extract_layers [1,2,3],
                       conditional_layer 1, refined head, legacy eos_token_id 2 as CIDAS) and
                       reference.safetensors: inputs, logits, the three decoder taps, the
                       conditional embedding. The 64-px model runs at 96 px, so the position
                       embeddings are bicubically interpolated (4x4 -> 6x6 grid).
  tiny-clipseg-bin/    the same model as pytorch_model.bin (+ the int64 position_ids buffers the
                       real CIDAS .bin carries), for the .bin import path.
  tiny-clipseg-plain/  a second model with the plain transposed-conv head and new-style EOS
                       pooling (first position of eos_token_id 500, which is not the largest id).
  tiny-clipseg/{dense,shallow}_vlc.safetensors
                       fixed adapter weights (PyTorch layout, the reference code's names) and
                       the logits of a PyTorch DA-VLC / SA-VLC written from reference §1 on the
                       tiny model (adapters.reference.safetensors).
  tokenizer_cases.json ids of >=100 varied prompts from transformers' CLIPTokenizer, each
                       cross-checked against open_clip's pure-Python SimpleTokenizer.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer import vocab_and_merges  # noqa: E402
from hf_reference import reference  # noqa: E402
from reference_adapter import Adapter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
IMAGE = 96


def tiny_config(**over):
    cfg = dict(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
                         max_position_embeddings=77, vocab_size=49408, bos_token_id=0, eos_token_id=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=5, num_attention_heads=4,
                           image_size=64, patch_size=16),
        projection_dim=16, extract_layers=[1, 2, 3], reduce_dim=16, decoder_num_attention_heads=2,
        decoder_intermediate_size=24, conditional_layer=1, use_complex_transposed_convolution=True,
    )
    cfg.update(over)
    return CLIPSegConfig(**cfg)


def randomize(model, seed):
    """HF init leaves LayerNorms at 1/0 and biases at 0; randomise everything so a wrong mapping shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.02 if "embedding" in name else 0.2
            if name.endswith("logit_scale"):
                continue
            if "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(scale * torch.randn(p.shape, generator=g))




def causal_mask(t):
    return torch.full((t, t), torch.finfo(torch.float32).min).triu(1)[None, None]


def dense_layer(layer, x, mask, attn_adapter, out_adapter):
    h, _ = layer.self_attn(hidden_states=layer.layer_norm1(x), attention_mask=mask)
    x = x + (attn_adapter(h) if attn_adapter is not None else h)
    h = layer.mlp(layer.layer_norm2(x))
    return x + (out_adapter(h) if out_adapter is not None else h)


def dense_vlc(model, pixel_values, input_ids, dim, cond_hidden, seed):
    """CLIPSegDenseAdapter (reference §1.3): adapters in blocks 0..max(extract)-1 of both towers."""
    cfg = model.config
    n = max(model.extract_layers)
    vw, tw = cfg.vision_config.hidden_size, cfg.text_config.hidden_size
    ad = torch.nn.ModuleDict({
        "v_attn_adapters": torch.nn.ModuleList([Adapter(vw, dim) for _ in range(n)]),
        "v_out_adapters": torch.nn.ModuleList([Adapter(vw, dim) for _ in range(n)]),
        "l_attn_adapters": torch.nn.ModuleList([Adapter(tw, dim) for _ in range(n)]),
        "l_out_adapters": torch.nn.ModuleList([Adapter(tw, dim) for _ in range(n)]),
        "cond_adapter": Adapter(cfg.projection_dim, cond_hidden),
    })
    randomize(ad, seed)
    clip = model.clip
    with torch.no_grad():
        x = clip.vision_model.pre_layrnorm(clip.vision_model.embeddings(pixel_values, interpolate_pos_encoding=True))
        states = [x]
        for l, layer in enumerate(clip.vision_model.encoder.layers):
            a = (ad["v_attn_adapters"][l], ad["v_out_adapters"][l]) if l < n else (None, None)
            x = dense_layer(layer, x, None, *a)
            states.append(x)
        taps = [states[i + 1] for i in model.extract_layers]
        t = clip.text_model.embeddings(input_ids=input_ids)
        mask = causal_mask(input_ids.shape[1])
        for l, layer in enumerate(clip.text_model.encoder.layers):
            a = (ad["l_attn_adapters"][l], ad["l_out_adapters"][l]) if l < n else (None, None)
            t = dense_layer(layer, t, mask, *a)
        t = clip.text_model.final_layer_norm(t)
        pooled = t[torch.arange(t.shape[0]), input_ids.argmax(-1)]
        cond = ad["cond_adapter"](clip.text_projection(pooled))
        logits = model.decoder(taps, cond).logits
    return ad, logits


def shallow_vlc(model, pixel_values, input_ids, attention_mask, dim, cond_hidden, seed):
    """CLIPSegShallowAdapter (reference §1.4): tap adapters, EOS adapters added to cond after A_c."""
    cfg = model.config
    k = len(model.extract_layers)
    vw, tw = cfg.vision_config.hidden_size, cfg.text_config.hidden_size
    ad = torch.nn.ModuleDict({
        "vision_extract_adapters": torch.nn.ModuleList([Adapter(vw, dim) for _ in range(k)]),
        "text_extract_adapters": torch.nn.ModuleList([Adapter(tw, dim) for _ in range(k)]),
        "cond_adapter": Adapter(cfg.projection_dim, cond_hidden),
    })
    randomize(ad, seed)
    clip = model.clip
    with torch.no_grad():
        vh = clip.vision_model(pixel_values, output_hidden_states=True, interpolate_pos_encoding=True).hidden_states
        taps = [ad["vision_extract_adapters"][j](vh[e + 1]) for j, e in enumerate(model.extract_layers)]
        out = clip.text_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        cond = ad["cond_adapter"](clip.text_projection(out.pooler_output))
        eos = input_ids.argmax(-1)
        for j, e in enumerate(model.extract_layers):
            h = out.hidden_states[e + 1][torch.arange(input_ids.shape[0]), eos]
            cond = cond + ad["text_extract_adapters"][j](h)
        logits = model.decoder(taps, cond).logits
    return ad, logits


def prompts():
    classes = ["polyp", "skin lesion", "tumor", "left ventricle", "myocardium", "left atrium", "ulcer",
               "pleural effusion", "cardiomegaly", "nodule", "diabetic foot ulcer", "benign tumor"]
    templates = ["{c}", "a {c}", "one small round {c}", "two large {c}s in the left of the image",
                 "{c} located in bottom right of the image", "The {c} is pink-red and bumpy.",
                 "An image of a {C}, seen in ultrasound!", "segment the {c}"]
    out = [t.format(c=c, C=c.upper()) for c in classes for t in templates]
    out += [
        "", " ", "polyp", "POLYP", "  polyp   with \t tabs\nand newlines  ", "it's the patient's 3rd scan",
        "we've seen they'll they'd I'm you're", "size 12x15mm, grade II/III", "3.5 cm lesion (approx.)",
        "café au lait spot", "naïve Über façade", "résumé of the mass", "mass—irregular; margins…",
        "emoji 🙂 test", "日本語のテキスト", "C++ & python-like tokens: a_b, a-b, a/b",
        "hyper-echoic/hypo-echoic boundary", "#hashtag @mention $dollar 100%",
        "Left ventricular cavity of the heart.", "No tumor in the breast ultrasound image.",
        "one medium yellow round polyp, located in right of the image",
        " ".join(["very long prompt"] * 40),
        "a" * 300,
        "pneumothorax " * 90,
    ]
    return out


def tokenizer_cases():
    vocab, merges = vocab_and_merges()
    tok = CLIPTokenizer(vocab=vocab, merges=merges)
    import open_clip
    ref = open_clip.get_tokenizer("ViT-B-16")
    cases = []
    for text in prompts():
        ids = tok(text, max_length=77, truncation=True, padding="max_length")["input_ids"]
        oc = ref([text])[0].tolist()
        n = oc.index(49407) + 1
        assert ids[:n] == oc[:n], (text, ids[:n], oc[:n])
        assert len(ids) == 77
        cases.append({"text": text, "ids": ids})
    return tok, cases


def save_model(model, folder, bin_format=False):
    os.makedirs(folder, exist_ok=True)
    model.config.to_json_file(os.path.join(folder, "config.json"))
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if bin_format:
        # the real CIDAS .bin also carries these int64 buffers; a loader must ignore them
        sd["clip.text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
        sd["clip.vision_model.embeddings.position_ids"] = torch.arange(17).unsqueeze(0)
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
    else:
        save_file(sd, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})


def main():
    torch.manual_seed(0)
    tok, cases = tokenizer_cases()
    json.dump(cases, open(os.path.join(FIX, "tokenizer_cases.json"), "w"), ensure_ascii=False, indent=0)
    print(f"{len(cases)} tokenizer cases")

    model = CLIPSegForImageSegmentation(tiny_config()).eval()
    randomize(model, 1)
    g = torch.Generator().manual_seed(2)
    pixel_values = torch.randn(2, 3, IMAGE, IMAGE, generator=g)
    enc = tok(["one medium yellow round polyp, located in right of the image", "tumor"],
              max_length=77, truncation=True, padding="max_length", return_tensors="pt")
    ref = reference(model, pixel_values, enc["input_ids"], enc["attention_mask"])
    save_model(model, os.path.join(FIX, "tiny-clipseg"))
    save_model(model, os.path.join(FIX, "tiny-clipseg-bin"), bin_format=True)
    save_file(ref, os.path.join(FIX, "tiny-clipseg", "reference.safetensors"))

    ids, mask = enc["input_ids"], enc["attention_mask"]
    dense, dense_logits = dense_vlc(model, pixel_values, ids, dim=8, cond_hidden=8, seed=11)
    shallow, shallow_logits = shallow_vlc(model, pixel_values, ids, mask, dim=12, cond_hidden=8, seed=12)
    for name, ad in [("dense_vlc", dense), ("shallow_vlc", shallow)]:
        sd = {k: v.contiguous() for k, v in ad.state_dict().items()}
        save_file(sd, os.path.join(FIX, "tiny-clipseg", f"{name}.safetensors"))
    save_file({"dense_vlc": dense_logits.contiguous(), "shallow_vlc": shallow_logits.contiguous()},
              os.path.join(FIX, "tiny-clipseg", "adapters.reference.safetensors"))
    print("DA-VLC vs frozen max |diff|:", (dense_logits - ref["logits"]).abs().max().item(),
          " SA-VLC:", (shallow_logits - ref["logits"]).abs().max().item())

    plain = CLIPSegForImageSegmentation(tiny_config(
        use_complex_transposed_convolution=False, conditional_layer=0,
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, vocab_size=1000, eos_token_id=500))).eval()
    randomize(plain, 3)
    ids = torch.randint(0, 1000, (2, 77), generator=g)
    ids[ids == 500] = 7
    ids[0, 9:] = 500
    ids[1, 30:] = 500
    ids[0, 3] = 999  # argmax would pick this; new-style pooling must pick position 9
    ref = reference(plain, pixel_values, ids, torch.ones_like(ids))
    save_model(plain, os.path.join(FIX, "tiny-clipseg-plain"))
    save_file(ref, os.path.join(FIX, "tiny-clipseg-plain", "reference.safetensors"))
    print("fixtures written to", FIX)


if __name__ == "__main__":
    main()
