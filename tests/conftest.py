"""Shared fixtures: offline mode, the real data dir, a tiny encoder and the converted multilingual encoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path | None:
    env = os.environ.get("XNER_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    return path if (path / "conll2003" / "train.txt").is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data root; tests that need it skip with the reason where it is absent."""
    path = _data_dir()
    if path is None:
        pytest.skip("real data not found: set XNER_DATA or place the shared data at ../shared/data")
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, data_dir) -> Path:
    """A 2-layer, hidden-32 random BERT with a word-level tokenizer built from real CoNLL-2003 words."""
    from xner.data.registry import load_split
    from xner.models.tiny import build_tiny_encoder

    sentences, _ = load_split("conll2003::train", data_dir, limit=3000)
    return build_tiny_encoder(
        tmp_path_factory.mktemp("tiny") / "enc", (w for s in sentences for w in s.tokens)
    )


@pytest.fixture(scope="session")
def me5_dir() -> Path:
    """The converted multilingual-e5-small (made by `make setup`)."""
    from xner.models.convert_e5 import default_model_dir

    path = default_model_dir()
    if not (path / "config.json").is_file():
        pytest.skip(f"converted multilingual-e5-small not found at {path}: run `make setup`")
    return path


@pytest.fixture(scope="session")
def tiny_tagger_ckpt(tmp_path_factory, tiny_encoder) -> Path:
    """A TaggerModule checkpoint of the tiny encoder trained briefly on real English sentences."""
    from functools import partial

    import lightning as L
    import torch

    from xner.data.datamodule import NERDataModule
    from xner.lit.tagger import TaggerModule

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tagger")
    module = TaggerModule(
        str(tiny_encoder), freeze_embeddings=False, optimizer=partial(torch.optim.AdamW, lr=5e-3)
    )
    dm = NERDataModule(str(tiny_encoder), train={"ref": "conll2003::train", "limit": 1000}, val=None, test={})
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, dm)
    trainer.save_checkpoint(out / "tagger.ckpt")
    return out / "tagger.ckpt"


def _build_tiny_bart(out_dir: Path, words: list[str]) -> Path:
    """A random 1-layer BART with a word-level tokenizer (a few hundred KB, built in ~1 s): a stand-in for
    a real seq2seq translator such as NLLB-200 (language codes in ``words`` become ordinary tokens)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()  # joins word pieces with spaces
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=None,
    )
    BartForConditionalGeneration(config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_seq2seq_builder():
    """``build(out_dir, words) -> out_dir``: a random 1-layer BART with a word-level tokenizer of ``words``."""
    return _build_tiny_bart
