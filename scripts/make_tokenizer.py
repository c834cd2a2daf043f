"""Builds nn/assets/clip-tokenizer.json, the CLIP BPE tokenizer shipped in the repo.

The vocabulary is OpenAI CLIP's MIT-licensed `bpe_simple_vocab_16e6.txt.gz`, taken from the
`open-clip-torch` wheel on PyPI. We rebuild `vocab.json` + `merges.txt` exactly as CLIP's
SimpleTokenizer does (256 byte symbols, the same with `</w>`, 48,894 merges, two specials =
49,408 ids), let transformers convert them to a `tokenizers` JSON, and check the result against
the reference test vectors and against open_clip's own pure-Python tokenizer.

Run by developers only (CI never needs Python):
    python -m venv pyenv && pyenv/bin/pip install transformers open-clip-torch ftfy
    pyenv/bin/python scripts/make_tokenizer.py
"""
import gzip
import json
import os
import sys
import tempfile

import open_clip
from open_clip.tokenizer import bytes_to_unicode
from transformers import CLIPTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "nn", "assets", "clip-tokenizer.json")

TEST_VECTORS = {
    "polyp": [49406, 6833, 335, 49407],
    "one medium yellow round polyp, located in right of the image": [
        49406, 637, 8675, 4481, 2522, 6833, 335, 267, 5677, 530, 1155, 539, 518, 2867, 49407],
    "Left ventricular cavity of the heart.": [49406, 1823, 1240, 9511, 4927, 43156, 539, 518, 1936, 269, 49407],
    "No tumor in the breast ultrasound image.": [49406, 871, 22616, 530, 518, 9475, 29717, 2867, 269, 49407],
    "": [49406, 49407],
}


def vocab_and_merges():
    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    return {tok: i for i, tok in enumerate(vocab)}, merges


def main():
    vocab, merges = vocab_and_merges()
    with tempfile.TemporaryDirectory() as tmp:
        vf, mf = os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt")
        json.dump(vocab, open(vf, "w"))
        with open(mf, "w") as f:
            f.write("#version: 0.2\n")
            for a, b in merges:
                f.write(f"{a} {b}\n")
        tok = CLIPTokenizer(
            vocab=vocab, merges=merges)
        tok.save_pretrained(tmp)
        data = json.load(open(os.path.join(tmp, "tokenizer.json")))
    for text, ids in TEST_VECTORS.items():
        got = tok(text)["input_ids"]
        assert got == ids, (text, got, ids)
    with open(OUT, "w") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes), test vectors pass")


if __name__ == "__main__":
    sys.exit(main())
