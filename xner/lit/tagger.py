"""TaggerModule: fine-tune an encoder for NER (the plain model and the teacher)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch import nn

from xner.labels import LabelSet
from xner.lit.evaluation import SplitEvaluationMixin
from xner.lit.loading import record_class
from xner.lit.optim import clip_gradients, configure_adamw_linear_warmup
from xner.models.tagger import TaggerOutput, TokenClassifier, load_encoder

log = logging.getLogger(__name__)

WORD_EMBEDDING_KEY = "model.encoder.embeddings.word_embeddings.weight"


class TaggerModule(SplitEvaluationMixin, L.LightningModule):
    """An HF encoder with a token-classification head, trained with cross-entropy on first subwords.

    Args:
        encoder: HF model name or local directory (e.g. the converted multilingual-e5-small).
        types: entity types; labels are ``O, B-T, I-T, ...`` in this order.
        optimizer: a partial optimizer (Hydra ``_partial_: true``) called with the parameter groups;
            default AdamW(lr=3e-4, weight_decay=0.01).
        warmup_ratio: share of steps with a linear warm-up; linear decay to zero afterwards.
        freeze_embeddings: keep the word-embedding matrix fixed (and out of checkpoints).
        freeze_layers: keep the embeddings and the first N transformer layers fixed too (their backward pass
            is skipped: a cheaper step; ``make demo`` uses it to fit in minutes).
        dropout: dropout before the head.
        pretrained: ``False`` builds the encoder from its config only (random weights; tests).
        attn_implementation: ``sdpa`` (fast) or ``eager`` (needed to read attention maps).
    """

    def __init__(
        self,
        encoder: str,
        types: Sequence[str] = ("PER", "ORG", "LOC"),
        optimizer: Callable | None = None,
        warmup_ratio: float = 0.1,
        freeze_embeddings: bool = True,
        freeze_layers: int = 0,
        dropout: float = 0.1,
        pretrained: bool = True,
        attn_implementation: str = "sdpa",
    ):
        super().__init__()
        types = [
            str(t) for t in types
        ]  # plain list: checkpoints must load with torch.load(weights_only=True)
        self.save_hyperparameters(ignore=["optimizer"])
        self.init_evaluation(LabelSet(list(types)))
        self.model = TokenClassifier(
            load_encoder(encoder, pretrained, attn_implementation), len(self.label_set), dropout
        )
        if freeze_embeddings:
            self.model.freeze_word_embeddings()
        self.model.freeze_bottom_layers(freeze_layers)
        self.optimizer_factory = optimizer
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
        self.train()  # from_pretrained returns eval mode; Lightning keeps submodule modes, so dropout would be off

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs) -> TaggerOutput:
        """Run the tagger."""
        return self.model(input_ids, attention_mask, **kwargs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        loss = self.loss_fn(logits.flatten(0, 1), batch["labels"].flatten())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"]).logits
        loss = self.loss_fn(logits.flatten(0, 1), batch["labels"].flatten())
        self.log("val/loss", loss, batch_size=batch["input_ids"].shape[0], add_dataloader_idx=False)
        self.collect("val", batch, logits, dataloader_idx)

    def configure_optimizers(self):
        return configure_adamw_linear_warmup(self, self.optimizer_factory, self.hparams.warmup_ratio)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    # Frozen word embeddings equal the pretrained encoder's: leave them out of checkpoints (-384 MB for
    # multilingual-e5-small) and take them from the encoder directory again when loading.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_class(self, checkpoint)
        if self.hparams.freeze_embeddings and self.hparams.pretrained:
            checkpoint["state_dict"].pop(WORD_EMBEDDING_KEY, None)
            checkpoint["xner_embeddings_from"] = self.hparams.encoder

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "xner_embeddings_from" in checkpoint and WORD_EMBEDDING_KEY not in checkpoint["state_dict"]:
            checkpoint["state_dict"][WORD_EMBEDDING_KEY] = self.state_dict()[WORD_EMBEDDING_KEY]
