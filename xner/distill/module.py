"""DistillModule: a student learns from a frozen teacher at a chosen depth of layers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from transformers import AutoTokenizer

from xner.data.encoding import encode_sentences
from xner.distill import losses
from xner.distill.layer_map import STRATEGIES, build_layer_map
from xner.distill.student import (
    resolve_teacher_layers,
    same_location,
    student_from_config,
    student_from_pretrained,
    student_from_teacher,
    teacher_encoder_dir,
    vocabulary_difference,
)
from xner.distill.teacher_cache import (
    TeacherCache,
    cache_key,
    encoded_sha256,
    file_sha256,
    get_or_build_teacher_cache,
)
from xner.labels import LabelSet
from xner.lit.evaluation import SplitEvaluationMixin
from xner.lit.loading import load_checkpoint_module, record_class
from xner.lit.optim import configure_adamw_linear_warmup
from xner.models.tagger import TokenClassifier, read_word_embeddings
from xner.paths import cache_dir as default_cache_dir

log = logging.getLogger(__name__)

WORD_EMBEDDING_KEY = "student.encoder.embeddings.word_embeddings.weight"


@dataclass
class DistillConfig:
    """What the student learns from the teacher, and where.

    Attributes:
        depth: number of mapped layer pairs (0 = logits only).
        map: layer-map strategy: uniform, last, skip or explicit.
        pairs: explicit (student, teacher) pairs for ``map=explicit``.
        temperature: softmax temperature of the soft labels.
        ce_weight: weight of cross-entropy on gold/projected labels (0 = pure distillation).
        kd_weight: weight of the soft-label loss.
        hidden_weight: weight of the hidden-state loss (averaged over pairs, so depth does not scale it).
        attention_weight: weight of the attention loss (0 = off).
        kd_loss: ``kl`` or ``mse`` (Wu et al. 2020's code).
        hidden_loss: ``mse`` (TinyBERT), ``cosine`` or ``pkd`` (normalised states, Patient KD).
        attention_loss: ``kl`` or ``mse``.
        teacher_mode: ``cached`` (teacher run once, outputs memory-mapped) or ``online``.
        cache_all_layers: when building the cache for a hidden-state loss, store every teacher layer, so runs
            at other depths reuse the same entry instead of running the teacher again.
    """

    depth: int = 0
    map: str = "uniform"
    pairs: list[list[int]] | None = None
    temperature: float = 1.0
    ce_weight: float = 0.0
    kd_weight: float = 1.0
    hidden_weight: float = 1.0
    attention_weight: float = 0.0
    kd_loss: str = "kl"
    hidden_loss: str = "mse"
    attention_loss: str = "kl"
    teacher_mode: str = "cached"
    cache_all_layers: bool = False

    def __post_init__(self) -> None:
        if self.kd_loss not in ("kl", "mse"):
            raise ValueError(f"distill.kd_loss must be kl or mse, got {self.kd_loss!r}")
        if self.hidden_loss not in losses.HIDDEN_LOSSES:
            raise ValueError(
                f"distill.hidden_loss must be one of {', '.join(losses.HIDDEN_LOSSES)}, got {self.hidden_loss!r}"
            )
        if self.attention_loss not in losses.ATTENTION_LOSSES:
            raise ValueError(
                f"distill.attention_loss must be one of {', '.join(losses.ATTENTION_LOSSES)}, "
                f"got {self.attention_loss!r}"
            )
        if self.map not in STRATEGIES:  # checked here too, so before the teacher is loaded
            raise ValueError(f"distill.map must be one of {', '.join(STRATEGIES)}, got {self.map!r}")
        if self.teacher_mode not in ("cached", "online"):
            raise ValueError(f"distill.teacher_mode must be cached or online, got {self.teacher_mode!r}")


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
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "tokenizer", None) is not None:
            # Lightning sets the DataModule up first: its splits are encoded, nothing has read them yet.
            self.check_data_tokenizer(datamodule, stage)
        if stage == "fit" and self.cfg.teacher_mode == "cached":
            self._teacher_cache = self.prepare_teacher_cache()

    def check_data_tokenizer(self, datamodule, stage: str = "fit") -> None:
        """Fail before any model reads a subword id when the data was encoded with another vocabulary.

        A student initialised from teacher layers keeps the teacher's embedding matrix, so data encoded with
        another tokenizer indexes the wrong rows, or rows past the end: an ``IndexError`` deep inside the
        teacher-cache build or the first training step. An online teacher reads the student's ids too.

        Args:
            datamodule: a DataModule with ``tokenizer`` (loaded) and ``tokenizer_name``.
            stage: the Lightning stage (the online teacher is checked only when fitting).

        Raises:
            ValueError: the DataModule's tokenizer does not give the ids the student (or the online teacher)
                was trained on; the message names the tokenizer to use.
        """
        fix = (
            "set data.tokenizer={expected}, or leave data.tokenizer out (the kd experiments take the "
            "student's tokenizer from the teacher checkpoint)"
        )
        rows = self.student.encoder.get_input_embeddings().num_embeddings
        if self.hparams.student.get("init", "teacher_layers") == "teacher_layers":
            why = (
                "A student built from teacher layers shares the teacher's embeddings, so its data must be "
                "encoded with the tokenizer the teacher was trained with (recorded in "
                f"{self.hparams.teacher_ckpt})."
            )
            self._check_vocabulary(
                datamodule, self.hparams.encoder, "the teacher's tokenizer", rows, why, fix
            )
            return
        why = "The data must be encoded with the student encoder's tokenizer."
        role = "the student's own tokenizer (student.encoder)"
        self._check_vocabulary(datamodule, self.hparams.encoder, role, rows, why, fix)
        if stage == "fit" and self.cfg.teacher_mode == "online":
            rows = self.teacher.encoder.get_input_embeddings().num_embeddings
            why = "An online teacher (distill.teacher_mode=online) reads the student's subword ids."
            fix = "use distill.teacher_mode=cached, which encodes the text again with the teacher's tokenizer"
            self._check_vocabulary(
                datamodule, self.teacher_encoder_dir, "the teacher's tokenizer", rows, why, fix
            )

    def _check_vocabulary(self, datamodule, expected: str, role: str, rows: int, why: str, fix: str) -> None:
        found, expected = str(datamodule.tokenizer_name), str(expected)
        if (found, expected) in self._checked_tokenizers or same_location(found, expected):
            return
        try:
            reference = AutoTokenizer.from_pretrained(expected)
        except OSError as err:
            # The teacher's encoder dir may have moved since it was trained: check what still can be.
            log.warning("cannot load %s to compare data.tokenizer with it (%s)", expected, err)
            size = len(datamodule.tokenizer)
            problem = f"it has {size} tokens, the model's embeddings {rows} rows" if size > rows else None
        else:
            # the data's own words too: a word-level or small vocabulary maps most probe words to unknown
            words = [w for ds in datamodule.datasets.values() for s in ds.sentences[:20] for w in s.tokens]
            problem = vocabulary_difference(datamodule.tokenizer, reference, words[:300])
        if problem is not None:
            raise ValueError(
                f"data.tokenizer={found} does not have the vocabulary of {role}, {expected}: {problem}. "
                f"{why} Fix: {fix.format(expected=expected)}."
            )
        self._checked_tokenizers.add((found, expected))

    def prepare_teacher_cache(self) -> TeacherCache:
        """Run the teacher once over the training split (or reuse a matching cache entry)."""
        datamodule = self.trainer.datamodule
        dataset = datamodule.datasets["train"]
        teacher_encoder = self.teacher_encoder_dir
        encoded, pad_token_id = dataset.encoded, datamodule.tokenizer.pad_token_id
        if not same_location(teacher_encoder, self.hparams.encoder):
            if self.hidden_layers or self.attention_layers:
                raise ValueError(
                    "hidden-state/attention distillation needs the teacher's tokenizer; this student "
                    f"uses {self.hparams.encoder}, the teacher {teacher_encoder}. Use depth=0."
                )
            tokenizer = AutoTokenizer.from_pretrained(teacher_encoder)
            encoded, _ = encode_sentences(dataset.sentences, tokenizer, None, datamodule.max_length)
            pad_token_id = tokenizer.pad_token_id  # the student's pad id may not exist in the teacher's vocab
        key = cache_key(file_sha256(self.hparams.teacher_ckpt), encoded_sha256(encoded))
        root = Path(self.hparams.cache_dir or default_cache_dir() / "teacher") / key
        all_layers = (
            list(range(self.teacher.num_layers + 1))
            if self.cfg.cache_all_layers and self.hidden_layers
            else None
        )
        return get_or_build_teacher_cache(
            root,
            self.hidden_layers,
            self.attention_layers,
            {
                "teacher": self.teacher,
                "encoded": encoded,
                "pad_token_id": pad_token_id,
                "meta": {"teacher_ckpt": str(self.hparams.teacher_ckpt), "split": dataset.name},
            },
            build_hidden_layers=all_layers,
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
                self._check_same_ids(cache, indices, batch)
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
            "word_logits": gather_words(res.logits, word_starts),
            "word_present": word_starts >= 0,
            "hidden": {t: res.hidden_states[t] for t in self.hidden_layers},
            "attention": {t: res.attentions[t - 1] for t in self.attention_layers},
        }

    @staticmethod
    def _check_same_ids(cache: TeacherCache, indices: list[int], batch: dict) -> None:
        for row, i in enumerate(indices):
            ids = cache.sentence_ids(i)
            mine = batch["input_ids"][row, : len(ids)].cpu().numpy()
            if len(ids) != int(batch["attention_mask"][row].sum()) or (ids != mine).any():
                raise ValueError(
                    f"cached teacher outputs for sentence {i} were computed on other subwords than "
                    "this batch (changed tokenizer or max_length?); delete the cache entry "
                    f"{cache.path} or use distill.teacher_mode=online"
                )

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
                gather_words(out.logits, batch["word_starts"]), teacher["word_logits"], mask, cfg.temperature
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


def gather_words(values: torch.Tensor, word_starts: torch.Tensor) -> torch.Tensor:
    """Per-word rows of ``values`` (``[B, T, D]``) at ``word_starts`` (``[B, W]``, -1 = none -> zeros)."""
    index = word_starts.clamp_min(0)[..., None].expand(-1, -1, values.shape[-1])
    return values.gather(1, index) * (word_starts >= 0)[..., None]
