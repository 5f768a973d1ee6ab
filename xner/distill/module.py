"""DistillModule: a student learns from a frozen teacher at a chosen depth of layers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from transformers import AutoTokenizer

from xner.data.encoding import encode_sentences, gather_word_starts
from xner.distill import losses
from xner.distill.config import DistillConfig
from xner.distill.layer_map import build_layer_map
from xner.distill.student import (
    resolve_teacher_layers,
    same_location,
    student_from_config,
    student_from_pretrained,
    student_from_teacher,
    teacher_encoder_dir,
    tokenizer_problem,
)
from xner.distill.teacher_cache import TeacherCache, teacher_outputs
from xner.labels import LabelSet
from xner.lit.evaluation import SplitEvaluationMixin
from xner.lit.loading import load_checkpoint_module, record_class
from xner.lit.optim import clip_gradients, configure_adamw_linear_warmup
from xner.models.tagger import TokenClassifier, read_word_embeddings
from xner.paths import cache_dir as default_cache_dir
from xner.types import Sentence

log = logging.getLogger(__name__)

__all__ = ["DistillConfig", "DistillModule"]  # DistillConfig is defined in xner.distill.config

WORD_EMBEDDING_KEY = "student.encoder.embeddings.word_embeddings.weight"


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


class DistillModule(SplitEvaluationMixin, L.LightningModule):
    """Student trained from a frozen teacher's soft labels, hidden states and attention at mapped layers.

    The teacher is kept outside the module's registered children: it is not optimised, not moved by
    accident into the student's state, and not saved in the student's checkpoint.

    Args:
        teacher_ckpt: checkpoint of a trained :class:`~xner.lit.tagger.TaggerModule`.
        distill: :class:`DistillConfig` fields.
        student: how to build the student: ``{"init": "teacher_layers", "layers": "every_other" | [1, 3, ...]}``
            or ``{"init": "pretrained", "encoder": <name or dir>}``.
        optimizer: partial optimizer (default AdamW lr 3e-4).
        warmup_ratio: linear warm-up share.
        freeze_embeddings: keep the student's word embeddings fixed.
        dropout: dropout before the student's head.
        cache_dir: where cached teacher outputs live (default ``$XNER_CACHE/teacher``).
        student_config: internal: the student's encoder config, saved so a checkpoint loads without the teacher.
        encoder: internal: the tokenizer/encoder directory the student uses.
        types: internal: entity types (from the teacher).
        teacher_hidden_size: internal: the teacher's width (for the hidden-state projections).
        teacher_layers: internal: the teacher's depth.
    """

    def __init__(
        self,
        teacher_ckpt: str | None = None,
        distill: Mapping | None = None,
        student: Mapping | None = None,
        optimizer: Callable | None = None,
        warmup_ratio: float = 0.1,
        freeze_embeddings: bool = True,
        dropout: float = 0.1,
        cache_dir: str | None = None,
        student_config: dict | None = None,
        encoder: str | None = None,
        types: Sequence[str] | None = None,
        teacher_hidden_size: int | None = None,
        teacher_layers: int | None = None,
    ):
        super().__init__()
        distill, student = _plain(distill) or {}, _plain(student) or {"init": "teacher_layers"}
        types = list(types) if types is not None else None
        self.cfg = DistillConfig(**distill)
        self.optimizer_factory = optimizer
        self._set_teacher(None)
        self._teacher_cache: TeacherCache | None = None
        self._checked_tokenizers: set[tuple[str, str]] = set()
        if student_config is None:  # a new student: built from the teacher
            teacher_module = self._load_teacher_module(teacher_ckpt)
            teacher = teacher_module.model
            types = list(teacher_module.label_set.types)
            teacher_hidden_size, teacher_layers = teacher.encoder.config.hidden_size, teacher.num_layers
            init = student.get("init", "teacher_layers")
            if init == "teacher_layers":
                chosen = resolve_teacher_layers(
                    student.get("layers", "every_other"), teacher_layers, student.get("num_layers")
                )
                self.student = student_from_teacher(teacher, chosen, dropout)
                encoder = teacher_module.hparams.encoder
            elif init == "pretrained":
                encoder = student["encoder"]
                self.student = student_from_pretrained(encoder, len(teacher_module.label_set), dropout)
            else:
                raise ValueError(f"student.init must be teacher_layers or pretrained, got {init!r}")
            student_config = self.student.encoder.config.to_dict()
            self._set_teacher(teacher)
            self._teacher_embeddings_frozen = bool(teacher_module.hparams.get("freeze_embeddings", False))
        else:  # loading a saved student: no teacher needed
            self.student = student_from_config(student_config, 1 + 2 * len(types), dropout)
            self._teacher_embeddings_frozen = True
        self.save_hyperparameters(ignore=["optimizer"])
        self.init_evaluation(LabelSet(types))
        if freeze_embeddings:
            self.student.freeze_word_embeddings()
        self.layer_map = build_layer_map(
            self.cfg.map, self.cfg.depth, self.student.num_layers, teacher_layers, self.cfg.pairs
        )
        width = self.student.encoder.config.hidden_size
        self.projections = nn.ModuleList(
            nn.Linear(width, teacher_hidden_size) if width != teacher_hidden_size else nn.Identity()
            for _ in self.layer_map
        )
        if self.cfg.attention_weight > 0:
            if any(s == 0 or t == 0 for s, t in self.layer_map):
                raise ValueError(
                    "attention distillation needs layers >= 1 in every pair (layer 0 is the embedding "
                    f"output and has no attention); map: {self.layer_map}"
                )
            self.student.encoder.set_attn_implementation("eager")
            if self._teacher is not None:
                self._teacher.encoder.set_attn_implementation("eager")
        self.ce = nn.CrossEntropyLoss(ignore_index=-100)
        self.train()  # pretrained parts come in eval mode; Lightning would keep their dropout off
        log.info(
            "student: %d layers, width %d; layer map (%s, depth %d): %s",
            self.student.num_layers,
            width,
            self.cfg.map,
            self.cfg.depth,
            self.layer_map,
        )

    def _set_teacher(self, teacher: TokenClassifier | None) -> None:
        # object.__setattr__ bypasses nn.Module registration: the teacher must not become a child module
        # (it would enter the optimizer, the state dict and the student's checkpoint).
        object.__setattr__(
            self, "_teacher", teacher.eval().requires_grad_(False) if teacher is not None else None
        )

    @staticmethod
    def _load_teacher_module(teacher_ckpt: str | None):
        if not teacher_ckpt:
            raise ValueError(
                "DistillModule needs teacher_ckpt: the checkpoint of a trained TaggerModule "
                "(e.g. logs/model_transfer/runs/<run>/checkpoints/best.ckpt)"
            )
        return load_checkpoint_module(teacher_ckpt)

    @property
    def teacher(self) -> TokenClassifier:
        """The frozen teacher, loaded on first use (not a registered child module)."""
        if self._teacher is None:
            self._set_teacher(self._load_teacher_module(self.hparams.teacher_ckpt).model)
            if self.cfg.attention_weight > 0:
                self._teacher.encoder.set_attn_implementation("eager")
        return self._teacher

    # ---------------------------------------------------------------- teacher outputs
    @property
    def hidden_layers(self) -> list[int]:
        """Teacher hidden states the losses need."""
        return sorted({t for _, t in self.layer_map}) if self.cfg.hidden_weight > 0 else []

    @property
    def attention_layers(self) -> list[int]:
        """Teacher attention layers the losses need."""
        return sorted({t for _, t in self.layer_map}) if self.cfg.attention_weight > 0 else []

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.cfg.teacher_mode == "cached" and self._teacher_cache is None:
            # Without this, a cached-mode run would fall back to the online teacher without a word.
            raise RuntimeError(
                "distill.teacher_mode=cached, but no teacher cache: call DistillModule.prepare_training("
                "sentences, tokenizer, tokenizer_name, max_length) before fitting (train.py does, through "
                "xner.tasks.train.prepare_distillation); it checks the data's tokenizer and builds the cache."
            )

    def prepare_training(
        self, sentences: Sequence[Sentence], tokenizer, tokenizer_name: str, max_length: int
    ) -> None:
        """Check the training data's tokenizer, then (``teacher_mode=cached``) run the teacher once over the
        training sentences or reuse a matching cache entry. Call before ``trainer.fit``.

        Args:
            sentences: the training sentences, in the order of the training dataset's indices.
            tokenizer: the tokenizer the training data is encoded with (the student's).
            tokenizer_name: its name or directory, as configured (``data.tokenizer``).
            max_length: the training split's subword limit.

        Raises:
            ValueError: the data's tokenizer does not give the ids the student (or an online teacher) reads.
        """
        words = [w for s in sentences[:20] for w in s.tokens]
        self.check_tokenizer(tokenizer, tokenizer_name, words)
        if self.cfg.teacher_mode == "cached":
            self._teacher_cache = self.teacher_cache(sentences, tokenizer, max_length)

    def check_tokenizer(
        self, tokenizer, tokenizer_name: str, words: Sequence[str] = (), stage: str = "fit"
    ) -> None:
        """Fail before any model reads a subword id when the data was encoded with another vocabulary.

        A student initialised from teacher layers keeps the teacher's embedding matrix, so data encoded with
        another tokenizer indexes the wrong rows, or rows past the end: an ``IndexError`` deep inside the
        teacher-cache build or the first training step. An online teacher reads the student's ids too.

        Args:
            tokenizer: the data's tokenizer (loaded).
            tokenizer_name: its name or directory (``data.tokenizer``).
            words: the data's own words, compared besides the probe words.
            stage: the Lightning stage (the online teacher is checked only when fitting).

        Raises:
            ValueError: the tokenizer does not give the ids the student (or the online teacher) was trained
                on; the message names the tokenizer to use.
        """
        fix = (
            "set data.tokenizer={expected}, or leave data.tokenizer out (the kd experiments take the "
            "student's tokenizer from the teacher checkpoint)"
        )
        data = (tokenizer, str(tokenizer_name), list(words))
        rows = self.student.encoder.get_input_embeddings().num_embeddings
        if self.hparams.student.get("init", "teacher_layers") == "teacher_layers":
            why = (
                "A student built from teacher layers shares the teacher's embeddings, so its data must be "
                "encoded with the tokenizer the teacher was trained with (recorded in "
                f"{self.hparams.teacher_ckpt})."
            )
            self._check_vocabulary(data, self.hparams.encoder, "the teacher's tokenizer", rows, why, fix)
            return
        why = "The data must be encoded with the student encoder's tokenizer."
        role = "the student's own tokenizer (student.encoder)"
        self._check_vocabulary(data, self.hparams.encoder, role, rows, why, fix)
        if stage == "fit" and self.cfg.teacher_mode == "online":
            rows = self.teacher.encoder.get_input_embeddings().num_embeddings
            why = "An online teacher (distill.teacher_mode=online) reads the student's subword ids."
            fix = "use distill.teacher_mode=cached, which encodes the text again with the teacher's tokenizer"
            self._check_vocabulary(data, self.teacher_encoder_dir, "the teacher's tokenizer", rows, why, fix)

    def _check_vocabulary(self, data: tuple, expected: str, role: str, rows: int, why: str, fix: str) -> None:
        tokenizer, found, words = data
        expected = str(expected)
        if (found, expected) in self._checked_tokenizers or same_location(found, expected):
            return
        problem = tokenizer_problem(tokenizer, expected, rows, words[:300])
        if problem is not None:
            raise ValueError(
                f"data.tokenizer={found} does not have the vocabulary of {role}, {expected}: {problem}. "
                f"{why} Fix: {fix.format(expected=expected)}."
            )
        self._checked_tokenizers.add((found, expected))

    def teacher_cache(self, sentences: Sequence[Sentence], tokenizer, max_length: int) -> TeacherCache:
        """The teacher's outputs on ``sentences``: read from the cache, or computed once and stored.

        Args:
            sentences: the training sentences (cache rows follow their order).
            tokenizer: the tokenizer the training batches are encoded with (the student's).
            max_length: the subword limit of the training batches.
        """
        teacher_encoder = self.teacher_encoder_dir
        if not same_location(teacher_encoder, self.hparams.encoder):
            if self.hidden_layers or self.attention_layers:
                raise ValueError(
                    "hidden-state/attention distillation needs the teacher's tokenizer; this student uses "
                    f"{self.hparams.encoder}, the teacher {teacher_encoder}. Use depth=0."
                )
            tokenizer = AutoTokenizer.from_pretrained(teacher_encoder)  # the teacher reads its own ids
        every_layer = self.cfg.cache_all_layers and self.hidden_layers
        return teacher_outputs(
            self.teacher,
            self.hparams.teacher_ckpt,
            encode_sentences(sentences, tokenizer, None, max_length)[0],
            tokenizer.pad_token_id,  # the student's pad id may not exist in the teacher's vocabulary
            Path(self.hparams.cache_dir or default_cache_dir() / "teacher"),
            self.hidden_layers,
            self.attention_layers,
            list(range(self.teacher.num_layers + 1)) if every_layer else None,
        )

    @property
    def teacher_encoder_dir(self) -> str:
        """The encoder directory (and tokenizer) the teacher was trained with."""
        return teacher_encoder_dir(self.hparams.teacher_ckpt)

    def teacher_outputs(self, batch: dict) -> dict:
        """Teacher word logits ``[B, W, L]`` (+ mask) and the hidden states/attentions the map needs."""
        width = batch["input_ids"].shape[1]
        word_starts = batch["word_starts"]
        if self._teacher_cache is not None:
            cache, indices = self._teacher_cache, batch["index"].tolist()
            logits, present = cache.batch_word_logits(indices, word_starts.shape[1])
            out = {"word_logits": logits.to(self.device), "word_present": present.to(self.device)}
            if self.hidden_layers or self.attention_layers:
                cache.check_same_ids(indices, batch["input_ids"], batch["attention_mask"])
            out["hidden"] = {
                t: cache.batch_hidden(t, indices, width).to(self.device) for t in self.hidden_layers
            }
            out["attention"] = {
                t: cache.batch_attention(t, indices, width).to(self.device) for t in self.attention_layers
            }
            return out
        teacher = self.teacher.to(self.device)
        with torch.no_grad():
            res = teacher(
                batch["input_ids"],
                batch["attention_mask"],
                output_hidden_states=bool(self.hidden_layers),
                output_attentions=bool(self.attention_layers),
            )
        return {
            "word_logits": gather_word_starts(res.logits, word_starts),
            "word_present": word_starts >= 0,
            "hidden": {t: res.hidden_states[t] for t in self.hidden_layers},
            "attention": {t: res.attentions[t - 1] for t in self.attention_layers},
        }

    # ---------------------------------------------------------------- losses
    def distillation_losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Every loss term for a batch (unweighted), plus the weighted ``total``."""
        cfg = self.cfg
        need_hidden, need_attention = bool(self.hidden_layers), bool(self.attention_layers)
        out = self.student(
            batch["input_ids"],
            batch["attention_mask"],
            output_hidden_states=need_hidden,
            output_attentions=need_attention,
        )
        teacher = self.teacher_outputs(batch) if cfg.kd_weight or need_hidden or need_attention else {}
        terms: dict[str, torch.Tensor] = {}
        total = out.logits.new_zeros(())
        if cfg.ce_weight > 0:
            labels = batch["labels"]
            terms["ce"] = (
                self.ce(out.logits.flatten(0, 1), labels.flatten())
                if (labels != -100).any()
                else total.clone()
            )
            total = total + cfg.ce_weight * terms["ce"]
        if cfg.kd_weight > 0:
            mask = (batch["word_starts"] >= 0) & teacher["word_present"]
            kd_fn = losses.soft_label_kl if cfg.kd_loss == "kl" else losses.soft_label_mse
            terms["kd"] = kd_fn(
                gather_word_starts(out.logits, batch["word_starts"]),
                teacher["word_logits"],
                mask,
                cfg.temperature,
            )
            total = total + cfg.kd_weight * terms["kd"]
        mask = batch["attention_mask"]
        if need_hidden:
            fn = losses.HIDDEN_LOSSES[cfg.hidden_loss]
            per_pair = [
                fn(proj(out.hidden_states[s]), teacher["hidden"][t], mask)
                for proj, (s, t) in zip(self.projections, self.layer_map, strict=True)
            ]
            terms["hidden"] = torch.stack(per_pair).mean()
            total = total + cfg.hidden_weight * terms["hidden"]
        if need_attention:
            fn = losses.ATTENTION_LOSSES[cfg.attention_loss]
            per_pair = [fn(out.attentions[s - 1], teacher["attention"][t], mask) for s, t in self.layer_map]
            terms["attention"] = torch.stack(per_pair).mean()
            total = total + cfg.attention_weight * terms["attention"]
        terms["total"] = total
        return terms

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        terms = self.distillation_losses(batch)
        size = batch["input_ids"].shape[0]
        for name, value in terms.items():
            self.log(
                f"train/{name}" if name != "total" else "train/loss",
                value,
                batch_size=size,
                prog_bar=name == "total",
            )
        return terms["total"]

    # ---------------------------------------------------------------- evaluation
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs):
        """Run the student."""
        return self.student(input_ids, attention_mask, **kwargs)

    def configure_optimizers(self):
        return configure_adamw_linear_warmup(self, self.optimizer_factory, self.hparams.warmup_ratio)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    # ---------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_class(self, checkpoint)
        checkpoint["distill_config"] = asdict(self.cfg)
        checkpoint["layer_map"] = [list(p) for p in self.layer_map]
        # frozen word embeddings are the pretrained encoder's: leave them out (-384 MB for me5-small)
        if (
            self.hparams.freeze_embeddings
            and self._teacher_embeddings_frozen
            and self.hparams.student.get("init", "teacher_layers") == "teacher_layers"
        ):
            checkpoint["state_dict"].pop(WORD_EMBEDDING_KEY, None)
            checkpoint["xner_embeddings_from"] = self.hparams.encoder

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        source = checkpoint.get("xner_embeddings_from")
        if source and WORD_EMBEDDING_KEY not in checkpoint["state_dict"]:
            checkpoint["state_dict"][WORD_EMBEDDING_KEY] = read_word_embeddings(source)
