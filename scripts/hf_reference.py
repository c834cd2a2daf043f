"""What the fixtures record of an HF CLIPSeg forward (shared by make_fixtures.py and
check_cidas.py): inputs, the decoder taps, the conditional embedding and the logits."""
import torch


def reference(model, pixel_values, input_ids, attention_mask):
    with torch.no_grad():
        logits = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = model.clip.vision_model(pixel_values, output_hidden_states=True,
                                         interpolate_pos_encoding=True).hidden_states
        taps = [hidden[i + 1] for i in model.extract_layers]
        cond = model.get_conditional_embeddings(batch_size=pixel_values.shape[0], input_ids=input_ids,
                                                attention_mask=attention_mask)
        again = model.decoder(taps, cond).logits
        assert torch.allclose(again, logits, atol=1e-6), "taps/cond do not reproduce the logits"
    out = {"pixel_values": pixel_values, "input_ids": input_ids, "logits": logits, "cond": cond}
    for k, t in enumerate(taps):
        out[f"tap{k}"] = t
    return {k: v.contiguous() for k, v in out.items()}
