"""VL-BART (VL-Adapter's design): BART whose encoder reads the task's text and the projected CLIP features together.

    model = VLBart(BartForConditionalGeneration.from_pretrained("facebook/bart-base"), feature_dim=768)
    loss = model(batch)                       # batch: a `VLBatch` from `VLCollate`
    texts = model.generate(batch, tokenizer)  # greedy or beam search
    choice = model.choose(batch, choices)     # multiple choice: the candidate with the highest mean log-likelihood

The encoder's input is [the task prefix and text, as BART's scaled token embeddings ; each image's or video's
features, projected to BART's width (a Linear and a LayerNorm, VL-Adapter's visual embedding) plus a learned
embedding of which image it is (NLVR2's left and right)]. BART then adds its learned positions to the whole sequence
and applies its embedding LayerNorm, as for text. The decoder generates the answer or the caption. The visual
embedding is new: it trains with every method (it is the `head` the adapters leave trainable).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class VisualEmbedding(nn.Module):
    """(…, N, feature_dim) features -> (…, N, d_model): Linear, LayerNorm, plus the image-index embedding."""

    def __init__(self, feature_dim: int, d_model: int, max_images: int = 2) -> None:
        super().__init__()
        self.projection = nn.Linear(feature_dim, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.image_index = nn.Embedding(max_images, d_model)

    def forward(self, features: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.projection(features)) + self.image_index(image_ids)


@dataclass
class VLBatch:
    input_ids: torch.Tensor  # (B, L) the task prefix and text
    attention_mask: torch.Tensor  # (B, L)
    features: torch.Tensor  # (B, N, feature_dim) every media item's features, concatenated and padded
    feature_mask: torch.Tensor  # (B, N)
    image_ids: torch.Tensor  # (B, N) which media item each feature row belongs to
    labels: torch.Tensor | None = None  # (B, T) target token ids, -100 where padded

    def to(self, device: torch.device) -> VLBatch:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()}
        return VLBatch(**moved)


class VLBart(nn.Module):
    def __init__(self, bart: nn.Module, feature_dim: int, max_images: int = 2) -> None:
        super().__init__()
        self.bart = bart
        self.visual = VisualEmbedding(feature_dim, bart.config.d_model, max_images)

    def encoder_inputs(self, batch: VLBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs_embeds (B, L + N, d), attention_mask (B, L + N)) of the encoder."""
        text = self.bart.get_encoder().embed_tokens(batch.input_ids)  # BART's scaled word embeddings
        visual = self.visual(batch.features.to(text.dtype), batch.image_ids)
        mask = torch.cat([batch.attention_mask, batch.feature_mask.to(batch.attention_mask.dtype)], 1)
        return torch.cat([text, visual], 1), mask

    def forward(self, batch: VLBatch) -> torch.Tensor:
        """The mean cross-entropy of the target tokens."""
        embeds, mask = self.encoder_inputs(batch)
        return self.bart(inputs_embeds=embeds, attention_mask=mask, labels=batch.labels).loss

    @torch.no_grad()
    def generate(self, batch: VLBatch, tokenizer, max_new_tokens: int = 20, num_beams: int = 1) -> list[str]:
        embeds, mask = self.encoder_inputs(batch)
        ids = self.bart.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens, num_beams=num_beams,
            do_sample=False,
        )  # fmt: skip
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    @torch.no_grad()
    def choose(self, batch: VLBatch, choice_labels: list[torch.Tensor]) -> list[int]:
        """For each example, the index of the candidate (label ids (C, T), -100 padded) with the highest mean token
        log-likelihood given the example's input."""
        embeds, mask = self.encoder_inputs(batch)
        encoded = self.bart.get_encoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        chosen = []
        for i, labels in enumerate(choice_labels):
            count = labels.shape[0]
            out = self.bart(
                encoder_outputs=(encoded[i : i + 1].expand(count, -1, -1),),
                attention_mask=mask[i : i + 1].expand(count, -1),
                labels=labels,
            )
            logp = out.logits.log_softmax(-1)  # (C, T, V)
            valid = labels != -100
            token = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (C, T)
            mean = (token * valid).sum(1) / valid.sum(1).clamp(min=1)
            chosen.append(int(mean.argmax()))
        return chosen
