"""Generates the BiomedCLIP parity fixtures under tests/fixtures/tiny-biomedclip/ and the tiny
vocabulary of the embedded model (run by developers, never by CI; no hub access).

    python -m venv pyenv && pyenv/bin/pip install torch transformers timm open-clip-torch safetensors
    pyenv/bin/python scripts/make_biomedclip_fixtures.py

The model is built from the real classes, wrapped as BiomedCLIP is: open_clip's `CustomTextCLIP`
with a `TimmModel` vision tower (timm `vit_base_patch16_224` shrunk by keyword arguments, as
`timm.create_model` takes them: patch 8, width 48, 4 blocks, 4 heads, MLP ratio 2, 32 px,
`dynamic_img_size` so that other input sizes resample the position embeddings the way timm does,
bicubic with antialiasing) and open_clip's `HFTextEncoder` around a `BertModel` from a local
`config.json` (width 32, 4 blocks, 4 heads, MLP 64, 40 positions; CLS pooling, MLP projection),
embed dim 24. Every parameter is randomised (LayerNorms around 1/0) so a wrong mapping shows.

Writes:
  tests/fixtures/tiny-biomedclip/
    open_clip_config.json   the open_clip model config, plus `timm_model_kwargs` /
                            `hf_model_config` (vlsm-zoo's extension: the sizes the published
                            config leaves to timm's model name and the hub's BERT config)
    open_clip_model.safetensors  the state dict as open_clip names it
    vocab.txt               the WordPiece vocabulary (the same as the embedded tiny model's)
    reference.safetensors   inputs (2 images at 48 px: grid 6x6 vs the 4x4 of training; 2 prompts
                            padded to 24 with pad id 0), every vision state (`vstate{i}`: 0 = input of
                            block 0), every BERT hidden state (`tstate{i}`: 0 = embeddings), the
                            image embedding (open_clip's encode_image), the projected text
                            (encode_text), the last layer's CLS state, and the logits of HF's
                            CLIPSegDecoder (medvlsm's BiomedCLIPEncCLIPSegDec wiring: taps = outputs
                            of blocks [1, 2, 3], FiLM from the projected text, plain 8x8 transposed
                            conv) with decoder weights in decoder/model.safetensors (HF names)
    dense_vlc.safetensors   fixed DA-VLC adapter weights (the reference code's names) and
    adapters.reference.safetensors  the logits of that DA-VLC: the reference adapter block after
                            the attention output and the MLP output of blocks 0..2 of both towers
                            (timm `attn.proj` / `mlp.fc2`, BERT `attention.output.dense` /
                            `output.dense`, i.e. before each residual add) and on the projected text
  tests/fixtures/tiny-biomedclip-bin/  the same model as open_clip_pytorch_model.bin (the published
                            format, with BERT's int64 position_ids / token_type_ids buffers)
  tests/fixtures/biomedclip_tokenizer_cases.json  ids of >= 100 varied prompts from transformers'
                            BertTokenizer on that vocabulary (context 24), cross-checked against
                            open_clip's HFTokenizer
  plugins/biomedclip/assets/tiny-biomedclip/vocab.txt  the same vocabulary
It also prints the full-size BiomedCLIP parameter count, part by part, from the same classes.
"""
import json
import os
import re
import sys
import tempfile

import open_clip
import timm
import torch
from open_clip.model import CustomTextCLIP
from safetensors.torch import save_file
from transformers import BertConfig, BertTokenizer, CLIPSegConfig
from transformers.models.clipseg.modeling_clipseg import CLIPSegDecoder

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import prompts  # noqa: E402
from reference_adapter import Adapter  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "tiny-biomedclip")
ASSET = os.path.join(ROOT, "plugins", "biomedclip", "assets", "tiny-biomedclip")
CONTEXT = 24

TIMM_KWARGS = dict(img_size=32, patch_size=8, embed_dim=48, depth=4, num_heads=4, mlp_ratio=2.0)
BERT = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu",
            pad_token_id=0)
EMBED_DIM = 24
EXTRACT = [1, 2, 3]


def vocabulary():
    """A small BERT vocabulary: specials, characters and their `##` forms, the words of the
    synthetic data's prompts and common medical prompt words, a few sub-word pieces."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    synth = open(os.path.join(ROOT, "zoo", "src", "data", "synth.rs"), encoding="utf-8").read()
    words = set()
    for literal in re.findall(r'"([^"\\]*)"', synth):
        words.update(w for w in re.findall(r"[a-z]+", literal.lower()) if len(w) > 1)
    words.update("""a an the of in on at to and with is are image picture scan segment left right top
        bottom center middle small medium large round oval irregular polyp polyps lesion lesions
        skin tumor tumour benign malignant breast ultrasound heart ventricle ventricular atrium
        myocardium cavity nodule ulcer foot diabetic pleural effusion lung chest mass region
        area no one two three four pink red brown dark bumpy located""".split())
    pieces = ["##s", "##es", "##ed", "##ing", "##ly", "##al", "##ic", "##ar", "##ous", "##ion"]
    tokens = specials + chars + ["##" + c for c in chars[:36]] + sorted(words) + pieces
    seen, out = set(), []
    for t in tokens:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def write_vocab(folder, vocab):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("logit_scale"):
                continue
            if "norm" in name.lower():
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                scale = 0.02 if ("embed" in name or "cls_token" in name) else 0.2
                p.copy_(scale * torch.randn(p.shape, generator=g))


def open_clip_config(bert_dir, vocab_size):
    bert = dict(BERT, vocab_size=vocab_size, model_type="bert")
    return {
        "model_cfg": {
            "embed_dim": EMBED_DIM,
            "vision_cfg": {
                "timm_model_name": "vit_base_patch16_224",
                "timm_model_pretrained": False,
                "timm_pool": "",
                "timm_proj": "linear",
                "image_size": TIMM_KWARGS["img_size"],
                "timm_model_kwargs": TIMM_KWARGS,
            },
            "text_cfg": {
                "hf_model_name": bert_dir,
                "hf_tokenizer_name": bert_dir,
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": CONTEXT,
                "hf_model_config": bert,
            },
        },
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }


def build(cfg):
    """CustomTextCLIP as open_clip builds BiomedCLIP, with the vision trunk made from the
    timm kwargs (TimmModel itself passes none)."""
    mc = cfg["model_cfg"]
    vision = {k: v for k, v in mc["vision_cfg"].items() if k != "timm_model_kwargs"}
    text = {k: v for k, v in mc["text_cfg"].items() if k != "hf_model_config"}
    text["hf_model_pretrained"] = False
    model = CustomTextCLIP(mc["embed_dim"], vision, text)
    kwargs = mc["vision_cfg"].get("timm_model_kwargs")
    if kwargs:
        trunk = timm.create_model(mc["vision_cfg"]["timm_model_name"], pretrained=False,
                                  dynamic_img_size=True, **kwargs)
        trunk.reset_classifier(0)
        model.visual.trunk = trunk
        model.visual.head.proj = torch.nn.Linear(trunk.num_features, mc["embed_dim"], bias=False)
    return model.eval()


def vision_states(trunk, x):
    x = trunk.patch_embed(x)
    x = trunk._pos_embed(x)
    x = trunk.norm_pre(x)
    states = [x]
    for block in trunk.blocks:
        x = block(x)
        states.append(x)
    return states


def decoder_config():
    return CLIPSegConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(hidden_size=TIMM_KWARGS["embed_dim"], patch_size=TIMM_KWARGS["patch_size"],
                           intermediate_size=96, num_hidden_layers=4, num_attention_heads=4),
        projection_dim=EMBED_DIM, extract_layers=EXTRACT, reduce_dim=16, decoder_num_attention_heads=4,
        decoder_intermediate_size=32, conditional_layer=0, use_complex_transposed_convolution=False,
    )


def forward_all(model, decoder, pixels, ids):
    with torch.no_grad():
        vs = vision_states(model.visual.trunk, pixels)
        mask = (ids != 0).long()
        out = model.text.transformer(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        projected = model.encode_text(ids)
        image = model.encode_image(pixels)
        logits = decoder([vs[e + 1] for e in EXTRACT], projected).logits
    return vs, out.hidden_states, projected, image, logits


def dense_vlc(model, decoder, pixels, ids, dim, cond_hidden, seed):
    """The reference adapter block after the attention and MLP outputs of blocks 0..max(extract)-1
    of both towers (wrapping the output linears, before dropout and the residual), and on the
    projected text."""
    n = max(EXTRACT)
    vw, tw = TIMM_KWARGS["embed_dim"], BERT["hidden_size"]
    ad = torch.nn.ModuleDict({
        "v_attn_adapters": torch.nn.ModuleList([Adapter(vw, dim) for _ in range(n)]),
        "v_out_adapters": torch.nn.ModuleList([Adapter(vw, dim) for _ in range(n)]),
        "l_attn_adapters": torch.nn.ModuleList([Adapter(tw, dim) for _ in range(n)]),
        "l_out_adapters": torch.nn.ModuleList([Adapter(tw, dim) for _ in range(n)]),
        "cond_adapter": Adapter(EMBED_DIM, cond_hidden),
    })
    randomize(ad, seed)
    import copy
    m = copy.deepcopy(model)
    for i in range(n):
        block = m.visual.trunk.blocks[i]
        block.attn.proj = torch.nn.Sequential(block.attn.proj, ad["v_attn_adapters"][i])
        block.mlp.fc2 = torch.nn.Sequential(block.mlp.fc2, ad["v_out_adapters"][i])
        layer = m.text.transformer.encoder.layer[i]
        layer.attention.output.dense = torch.nn.Sequential(layer.attention.output.dense, ad["l_attn_adapters"][i])
        layer.output.dense = torch.nn.Sequential(layer.output.dense, ad["l_out_adapters"][i])
    with torch.no_grad():
        vs = vision_states(m.visual.trunk, pixels)
        cond = ad["cond_adapter"](m.encode_text(ids))
        logits = decoder([vs[e + 1] for e in EXTRACT], cond).logits
    return ad, logits


def tokenizer_cases(folder):
    tok = BertTokenizer.from_pretrained(folder)
    oc = open_clip.tokenizer.HFTokenizer(folder, context_length=CONTEXT)
    cases = []
    for text in prompts():
        ids = tok(text, max_length=CONTEXT, truncation=True, padding="max_length")["input_ids"]
        assert ids == oc([text])[0].tolist(), (text, ids, oc([text])[0].tolist())
        cases.append({"text": text, "ids": ids})
    return cases


def full_size_count():
    with tempfile.TemporaryDirectory() as d:
        BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                   intermediate_size=3072, max_position_embeddings=512).save_pretrained(d)
        model = CustomTextCLIP(512, dict(timm_model_name="vit_base_patch16_224", timm_pool="",
                                         timm_proj="linear", image_size=224),
                               dict(hf_model_name=d, hf_tokenizer_name=d, hf_proj_type="mlp",
                                    hf_pooler_type="cls_last_hidden_state_pooler", context_length=256,
                                    hf_model_pretrained=False))

        def count(m):
            return sum(p.numel() for p in m.parameters())
        parts = {
            "visual.trunk": count(model.visual.trunk), "visual.head": count(model.visual.head),
            "text.transformer": count(model.text.transformer), "text.proj": count(model.text.proj),
            "logit_scale": model.logit_scale.numel(),
        }
        print("full-size BiomedCLIP:", count(model), parts)
        for cond, width in [("projected text", 512), ("BERT's CLS state", 768)]:
            dec = CLIPSegDecoder(CLIPSegConfig(projection_dim=width, extract_layers=[3, 6, 9], reduce_dim=64,
                                               vision_config=dict(hidden_size=768, patch_size=16),
                                               use_complex_transposed_convolution=False))
            print(f"medvlsm-settings CLIPSeg decoder, FiLM from the {cond} ({width}-d):", count(dec))


def main():
    torch.manual_seed(0)
    vocab = vocabulary()
    write_vocab(ASSET, vocab)
    write_vocab(FIX, vocab)
    with tempfile.TemporaryDirectory() as bert_dir:
        cfg = open_clip_config(bert_dir, len(vocab))
        BertConfig(**dict(BERT, vocab_size=len(vocab))).save_pretrained(bert_dir)
        write_vocab(bert_dir, vocab)
        cases = tokenizer_cases(bert_dir)
        model = build(cfg)
    randomize(model, 1)
    json.dump(cases, open(os.path.join(ROOT, "tests", "fixtures", "biomedclip_tokenizer_cases.json"), "w"),
              ensure_ascii=False, indent=0)
    print(f"{len(cases)} tokenizer cases, vocabulary of {len(vocab)}")

    cfg["model_cfg"]["text_cfg"]["hf_model_name"] = "local"
    cfg["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = "local"
    json.dump(cfg, open(os.path.join(FIX, "open_clip_config.json"), "w"), indent=2)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(FIX, "open_clip_model.safetensors"))
    # The published checkpoint is a torch pickle (open_clip_pytorch_model.bin) that also carries
    # BERT's int64 index buffers; a loader must skip them.
    bin_dir = FIX + "-bin"
    os.makedirs(bin_dir, exist_ok=True)
    sd_bin = dict(sd)
    sd_bin["text.transformer.embeddings.position_ids"] = torch.arange(BERT["max_position_embeddings"])[None]
    sd_bin["text.transformer.embeddings.token_type_ids"] = torch.zeros(1, BERT["max_position_embeddings"], dtype=torch.long)
    torch.save(sd_bin, os.path.join(bin_dir, "open_clip_pytorch_model.bin"))
    json.dump(cfg, open(os.path.join(bin_dir, "open_clip_config.json"), "w"), indent=2)
    write_vocab(bin_dir, vocab)

    decoder = CLIPSegDecoder(decoder_config()).eval()
    randomize(decoder, 2)
    os.makedirs(os.path.join(FIX, "decoder"), exist_ok=True)
    save_file({f"decoder.{k}": v.contiguous() for k, v in decoder.state_dict().items()},
              os.path.join(FIX, "decoder", "model.safetensors"))

    g = torch.Generator().manual_seed(3)
    pixels = torch.randn(2, 3, 48, 48, generator=g)
    tok = BertTokenizer.from_pretrained(FIX)
    ids = tok(["one medium red round polyp, located in right of the image", "tumour"],
              max_length=CONTEXT, truncation=True, padding="max_length", return_tensors="pt")["input_ids"]
    vs, ts, projected, image, logits = forward_all(model, decoder, pixels, ids)
    ref = {"pixel_values": pixels, "input_ids": ids, "text_projected": projected, "image_embeds": image,
           "text_cls": ts[-1][:, 0], "logits": logits}
    ref.update({f"vstate{i}": s for i, s in enumerate(vs)})
    ref.update({f"tstate{i}": s for i, s in enumerate(ts)})
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(FIX, "reference.safetensors"))

    ad, dense_logits = dense_vlc(model, decoder, pixels, ids, dim=8, cond_hidden=8, seed=11)
    save_file({k: v.contiguous() for k, v in ad.state_dict().items()}, os.path.join(FIX, "dense_vlc.safetensors"))
    save_file({"dense_vlc": dense_logits.contiguous()}, os.path.join(FIX, "adapters.reference.safetensors"))
    print("DA-VLC vs frozen max |diff|:", (dense_logits - logits).abs().max().item())
    print("logits", tuple(logits.shape), "vision states", len(vs), "text states", len(ts))
    full_size_count()


if __name__ == "__main__":
    main()
