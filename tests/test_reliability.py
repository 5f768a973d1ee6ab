"""Configurations that would run but report a wrong number are refused; samplers give each batch once."""

import pytest
from hydra import compose, initialize_config_dir
from test_distributed import ROOT

from xner.data import encoding
from xner.data.encoding import LengthBucketBatchSampler, ShardedBatchSampler
from xner.tasks.train import check_config


def composed(*overrides: str):
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", list(overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=hf"], "model.encoder is not set"),
        (["train=false"], "train=false .* needs its weights: set ckpt_path="),
        (
            ["trainer=ddp_cpu", "trainer.use_distributed_sampler=true"],
            "use_distributed_sampler must be false",
        ),
    ],
)
def test_configs_that_would_report_wrong_numbers_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        check_config(composed(*overrides))


def test_offered_configs_pass_the_check():
    for overrides in ([], ["trainer=ddp_cpu"], ["trainer=ddp"], ["train=false", "ckpt_path=x.ckpt"]):
        check_config(composed(*overrides))


def test_resume_skips_exactly_the_trained_batches():
    lengths = [(7 * i) % 40 + 1 for i in range(203)]
    full = list(LengthBucketBatchSampler(lengths, 8, seed=3, pool_batches=4))
    sampler = LengthBucketBatchSampler(lengths, 8, seed=3, pool_batches=4)
    sampler.skip_next(11)
    assert list(sampler) == full[11:]
    assert list(sampler) != full[11:]  # the skip applies to one epoch only (the next epoch reshuffles)


def test_evaluation_batches_are_shared_out_once(monkeypatch):
    lengths = [(5 * i) % 17 + 1 for i in range(50)]
    one = ShardedBatchSampler(lengths, 4)
    everything = [i for batch in one for i in batch]
    shares = []
    for rank in range(3):
        monkeypatch.setattr(encoding, "_dist_rank_world", lambda r=rank: (r, 3))
        shares.append([i for batch in ShardedBatchSampler(lengths, 4) for i in batch])
    assert sorted(everything) == list(range(50))
    assert sorted(i for share in shares for i in share) == list(range(50))  # no sentence twice, none lost
