"""A token classifier: any HF encoder plus a linear head over word states."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig

log = logging.getLogger(__name__)


@dataclass
class TaggerOutput:
    """Logits for every subword, plus the encoder's hidden states/attentions when asked for.

    ``hidden_states[0]`` is the embedding output and ``hidden_states[i]`` the output of layer ``i``.
    """

    logits: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def check_encoder_dir(name_or_path: str) -> None:
    """Fail early, with the fix, when a local encoder directory is missing or incomplete."""
    path = Path(name_or_path).expanduser()
    looks_local = path.is_absolute() or name_or_path.startswith((".", "~")) or path.exists()
    if looks_local and not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"Encoder directory {path} has no config.json. Convert the offline multilingual encoder with "
            "`make setup` (or `xner-convert-e5 --out <dir>`), or set model.encoder to a HF model name or dir."
        )


# model types whose HF classes build a pooler unless told not to
_POOLED_TYPES = frozenset({"bert", "xlm-roberta", "roberta"})


# RoBERTa-style encoders number positions from padding_idx + 1, so the first pad_token_id + 1 are never used
OFFSET_POSITION_TYPES = frozenset({"roberta", "xlm-roberta", "camembert"})


def usable_positions(config) -> int | None:
    """How many subwords (special tokens included) an encoder with this HF config can take; ``None`` when the
    config does not say."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    if getattr(config, "model_type", "") in OFFSET_POSITION_TYPES:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions


def encoder_from_config(config: PretrainedConfig) -> nn.Module:
    """A randomly initialised encoder without a pooler (token tasks never use it).

    Args:
        config: the HF config of the encoder.
    """
    kwargs = {"add_pooling_layer": False} if config.model_type in _POOLED_TYPES else {}
    return AutoModel.from_config(config, **kwargs)


def load_encoder(name_or_path: str, pretrained: bool = True, attn_implementation: str = "sdpa") -> nn.Module:
    """Load an encoder without a pooler (token tasks never use it; skipping it avoids a warning about
    newly initialised pooler weights).

    Args:
        name_or_path: a HF model name or a local model directory (checked for a ``config.json``).
        pretrained: load the weights; ``False`` builds the architecture with random weights.
        attn_implementation: the attention kernel (``"sdpa"`` or ``"eager"``).
    """
    check_encoder_dir(name_or_path)
    config = AutoConfig.from_pretrained(name_or_path)
    config._attn_implementation = attn_implementation
    if not pretrained:
        return encoder_from_config(config)
    kwargs = {"add_pooling_layer": False} if config.model_type in _POOLED_TYPES else {}
    return AutoModel.from_pretrained(name_or_path, config=config, **kwargs)


def transformer_layers(encoder: nn.Module, fix: str = "") -> nn.ModuleList:
    """The transformer layer list of a BERT-like encoder (BERT, XLM-R, RoBERTa, ELECTRA).

    Raises:
        TypeError: the encoder has no ``.encoder.layer`` (``fix`` is appended to the message).
    """
    try:
        return encoder.encoder.layer
    except AttributeError:
        raise TypeError(f"{type(encoder).__name__} is not BERT-like (no .encoder.layer){fix}") from None


class TokenClassifier(nn.Module):
    """Encoder -> dropout -> linear, per subword.

    Args:
        encoder: a HF encoder module returning ``last_hidden_state``.
        num_labels: size of the label set.
        dropout: dropout before the head.
    """

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def num_layers(self) -> int:
        """Transformer layers (hidden states are numbered 0..num_layers)."""
        return self.encoder.config.num_hidden_layers

    def freeze_word_embeddings(self) -> None:
        """Keep the (large, multilingual) word-embedding matrix fixed: saves memory and time on CPU."""
        self.encoder.get_input_embeddings().weight.requires_grad_(False)

    def freeze_bottom_layers(self, layers: int) -> None:
        """Keep the embeddings and the first ``layers`` transformer layers fixed.

        Nothing below the first trainable layer needs a gradient, so autograd neither stores their
        activations nor runs their backward pass: a step costs about ``(12 + 2 * (12 - layers)) / 36`` of a
        full one for a 12-layer encoder (forward everywhere, backward only above the frozen layers). The frozen
        layers also run without dropout (see :meth:`train`).
        """
        stack = transformer_layers(self.encoder)
        if not 0 <= layers <= len(stack):
            raise ValueError(f"freeze_layers must be in 0..{len(stack)} (the encoder's layers), got {layers}")
        self._frozen = [self.encoder.embeddings, *stack[:layers]] if layers else []
        for module in self._frozen:
            module.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> TokenClassifier:
        """Set train/eval mode; frozen bottom layers stay in eval mode: a fixed feature extractor, so no
        dropout noise (and none of its cost) below the first trained layer."""
        super().train(mode)
        for module in getattr(self, "_frozen", ()):
            module.eval()
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> TaggerOutput:
        """Logits of shape ``[batch, seq, num_labels]`` (and optional internals)."""
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        logits = self.head(self.dropout(out.last_hidden_state))
        return TaggerOutput(
            logits,
            out.hidden_states if output_hidden_states else None,
            out.attentions if output_attentions else None,
        )


def read_word_embeddings(encoder_dir: str | Path) -> torch.Tensor:
    """The word-embedding matrix of a saved encoder, read alone from its safetensors file."""
    from safetensors import safe_open  # noqa: PLC0415

    files = sorted(Path(encoder_dir).glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                if key.endswith("embeddings.word_embeddings.weight"):
                    return handle.get_tensor(key)
    raise FileNotFoundError(f"no word embeddings found in {encoder_dir} ({[f.name for f in files]})")
