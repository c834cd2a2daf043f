"""PyTorch reference timing for the forward benchmark (`cargo bench -p vlsm-zoo`).

HF CLIPSegForImageSegmentation with the CIDAS/clipseg-rd64-refined configuration and random
weights, 352x352, batch 1, 2 threads, float32, inference mode. Prints seconds per image
(median of 10 after 3 warm-up runs). Run on the same machine as the Rust bench:
    pyenv/bin/python scripts/bench_torch.py
"""
import statistics
import time

import torch
from transformers import CLIPSegConfig, CLIPSegForImageSegmentation

torch.set_num_threads(2)
config = CLIPSegConfig(
    extract_layers=[3, 6, 9], reduce_dim=64, projection_dim=512, conditional_layer=0,
    decoder_num_attention_heads=4, decoder_intermediate_size=2048, use_complex_transposed_convolution=True,
    text_config=dict(bos_token_id=0, eos_token_id=2), vision_config=dict(patch_size=16),
)
model = CLIPSegForImageSegmentation(config).eval()
pixels = torch.randn(1, 3, 352, 352)
ids = torch.full((1, 77), 49407)
ids[0, :15] = torch.tensor([49406, 637, 8675, 4481, 2522, 6833, 335, 267, 5677, 530, 1155, 539, 518, 2867, 49407])
times = []
with torch.inference_mode():
    for i in range(13):
        t = time.perf_counter()
        model(pixel_values=pixels, input_ids=ids)
        if i >= 3:
            times.append(time.perf_counter() - t)
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}: "
      f"{statistics.median(times):.3f} s/img (median of {len(times)}), min {min(times):.3f}")
