"""The ``simalign`` package (Jalili Sabet et al. 2020) behind the :class:`~xner.pipeline.align.Aligner` protocol.

One pair at a time, as the package does it: the reference that :class:`~xner.pipeline.align.EmbeddingAligner`
reproduces.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from xner.pipeline.align.base import (
    VERSION,
    check_layer,
    check_pairs,
    encoder_fingerprint,
    progress_bar,
    resolve_model_dir,
)
from xner.pipeline.align.methods import Links

# simalign's method codes and the keys of its result dict.
_SIMALIGN_CODES = {"argmax": ("a", "inter"), "itermax": ("i", "itermax"), "match": ("m", "mwmf")}


class SimAlignAligner:
    """The ``simalign`` package behind the :class:`Aligner` protocol (the reference implementation).

    Layers: simalign takes ``hidden_states[layer]`` of a model loaded with ``output_hidden_states=True``,
    where index 0 is the embedding output: the same numbering as xner's.

    Args:
        model_dir: encoder directory or hub id (default: the converted multilingual-e5-small).
        layer: hidden-state index (0 = embeddings, 1..L the layers).
        method: ``argmax``, ``itermax`` or ``match`` (simalign's ``inter``, ``itermax``, ``mwmf``).
        device: torch device string.
        progress: show a progress bar (None: only on a terminal).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        layer: int = 8,
        method: str = "itermax",
        device: str = "cpu",
        progress: bool | None = None,
    ) -> None:
        if method not in _SIMALIGN_CODES:
            raise ValueError(
                f"simalign has no method {method!r}: expected one of {', '.join(_SIMALIGN_CODES)} "
                "(use EmbeddingAligner for 'softmax')."
            )
        from simalign import SentenceAligner  # noqa: PLC0415

        self.model_dir = resolve_model_dir(model_dir)
        self.layer = int(layer)
        self.method = method
        self.progress = progress
        self.name = f"simalign-{method}-L{self.layer}"
        code = _SIMALIGN_CODES[method][0]
        self._aligner = SentenceAligner(
            model=self.model_dir, token_type="bpe", matching_methods=code, device=device, layer=self.layer
        )
        depth = self._aligner.embed_loader.emb_model.config.num_hidden_layers
        check_layer(self.layer, depth, self.model_dir)

    def align(self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]]) -> list[Links]:
        """Align each pair with the package, one pair per call (as the package works)."""
        return self.align_methods(source, target, [self.method])[self.method]

    def align_methods(
        self, source: Sequence[Sequence[str]], target: Sequence[Sequence[str]], methods: Sequence[str]
    ) -> dict[str, list[Links]]:
        """Several of simalign's methods from one package pass (one encoder run per pair).

        Args:
            source: source sentences as word lists.
            target: target sentences as word lists.
            methods: some of ``argmax``, ``itermax``, ``match``.

        Returns:
            ``{method: alignments}``.
        """
        check_pairs(source, target)
        unknown = [m for m in methods if m not in _SIMALIGN_CODES]
        if unknown:
            raise ValueError(
                f"simalign has no method {unknown[0]!r}: expected one of {', '.join(_SIMALIGN_CODES)}."
            )
        keys = {m: _SIMALIGN_CODES[m][1] for m in methods}
        out: dict[str, list[Links]] = {m: [] for m in methods}
        saved = self._aligner.matching_methods
        self._aligner.matching_methods = list(dict.fromkeys(keys.values()))
        try:
            pairs = zip(source, target, strict=True)
            for src, tgt in progress_bar(pairs, len(source), "simalign", self.progress):
                if not src or not tgt:  # the package fails on an empty side; there is nothing to link
                    found = {key: [] for key in keys.values()}
                else:
                    found = self._aligner.get_word_aligns(list(src), list(tgt))
                for m, key in keys.items():
                    out[m].append({(int(i), int(j)) for i, j in found[key]})
        finally:
            self._aligner.matching_methods = saved
        return out

    def cache_key(self) -> dict:
        """The settings that determine the alignments."""
        return {
            "kind": "simalign",
            "version": VERSION,
            "layer": self.layer,
            "method": self.method,
            **encoder_fingerprint(self.model_dir),
        }
