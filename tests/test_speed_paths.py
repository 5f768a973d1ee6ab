"""The code paths of fast CPU training: bf16 autocast with the fused AdamW and gradient clipping, frozen bottom
layers, and ``trainer.precision: auto``. (Speed itself is measured in benchmarks/, never asserted here.)"""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch

from xner.data.datamodule import NERDataModule
from xner.lit.optim import configure_adamw_linear_warmup
from xner.lit.tagger import TaggerModule
from xner.precision import cpu_has_native_bf16, resolve_precision


class GradNorms(L.Callback):
    """The global gradient norm each optimizer step used: read after ``optimizer.step``, whose closure runs
    the backward pass and the clipping (Lightning's ``on_before_optimizer_step`` sees them before clipping)."""

    def __init__(self):
        self.norms: list[float] = []

    def on_train_start(self, trainer, pl_module):
        def record(optimizer, args, kwargs):
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        trainer.optimizers[0].register_step_post_hook(record)


def _fit(module, encoder, precision: str, clip: float | None, steps: int = 4) -> GradNorms:
    norms = GradNorms()
    dm = NERDataModule(str(encoder), train={"ref": "conll2003::train", "limit": 64}, val=None, test={})
    trainer = L.Trainer(
        max_steps=steps,
        precision=precision,
        gradient_clip_val=clip,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[norms],
    )
    trainer.fit(module, dm)
    return norms


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fused_adamw_trains_with_gradient_clipping(tiny_encoder, data_dir, precision):
    torch.manual_seed(0)
    module = TaggerModule(
        str(tiny_encoder),
        freeze_embeddings=False,
        optimizer=partial(torch.optim.AdamW, lr=1e-2, fused=True),
    )
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    # a clip value far below the tiny model's gradient norm: every step is clipped to it
    norms = _fit(module, tiny_encoder, precision, clip=1e-3)
    assert len(norms.norms) == 4
    assert all(n == pytest.approx(1e-3, rel=1e-3) for n in norms.norms)
    assert any(not torch.equal(before[n], p) for n, p in module.named_parameters())  # it trained


def test_default_optimizer_is_the_fused_adamw(tiny_encoder):
    module = TaggerModule(str(tiny_encoder), freeze_embeddings=False)
    module.trainer = L.Trainer(max_steps=10, logger=False, enable_progress_bar=False)
    opt = configure_adamw_linear_warmup(module, None, 0.1)["optimizer"]
    assert opt.defaults["fused"] is True


def test_frozen_bottom_layers_get_no_gradient(tiny_encoder, data_dir):
    torch.manual_seed(0)
    module = TaggerModule(str(tiny_encoder), freeze_embeddings=False, freeze_layers=1)
    layers = module.model.encoder.encoder.layer
    frozen = {id(p) for p in [*module.model.encoder.embeddings.parameters(), *layers[0].parameters()]}
    module.train()  # what the trainer does before fitting: frozen layers stay in eval mode (no dropout)
    assert not module.model.encoder.embeddings.training and not layers[0].training
    assert layers[1].training and module.model.head.training
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    _fit(module, tiny_encoder, "bf16-mixed", clip=1.0, steps=2)
    for name, param in module.named_parameters():
        if id(param) in frozen:
            assert not param.requires_grad and param.grad is None and torch.equal(before[name], param), name
    assert not torch.equal(before["model.head.weight"], module.model.head.weight)
    assert any(
        not torch.equal(before[n], p)
        for n, p in layers[-1].named_parameters(prefix="model.encoder.encoder.layer.1")
    )


def test_freeze_layers_beyond_the_encoder_is_an_error(tiny_encoder):
    with pytest.raises(ValueError, match="freeze_layers must be in 0..2"):
        TaggerModule(str(tiny_encoder), freeze_layers=3)


def test_precision_auto_follows_the_cpu_flags(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f\n")
    assert cpu_has_native_bf16(str(with_bf16)) is True
    assert cpu_has_native_bf16(str(without)) is False
    assert cpu_has_native_bf16(str(tmp_path / "missing")) is False
    assert resolve_precision("32-true") == "32-true" and resolve_precision("bf16-mixed") == "bf16-mixed"
    expected = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", "gpu") == "32-true"


def test_evaluate_and_predict_default_to_auto_precision_and_build_a_trainer(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from xner.paths import PROJECT_ROOT

    for name in ("evaluate", "predict"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "configs"), version_base="1.3"):
            cfg = compose(config_name=name, overrides=["ckpt_path=x.ckpt"])
        assert cfg.trainer.precision == "auto"
        if name == "evaluate":  # what xner.tasks.evaluate does with it
            precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
            trainer = instantiate(
                cfg.trainer,
                precision=precision,
                default_root_dir=str(tmp_path),
                logger=False,
                enable_progress_bar=False,
            )
            expected = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
            assert trainer.precision == expected
    GlobalHydra.instance().clear()
