"""The one door to the test split: load_test, and a counter of how often test data was read.

Training code never imports this module; prepare_train_val only reaches the train pools. The
counter lets tests (and audits) prove that preparing training data reads no test data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from archsearch.data import cifar, digits, folder, idx
from archsearch.data.base import BatchSource
from archsearch.data.folder import FolderSource
from archsearch.data.sources import Pool, make_source
from archsearch.data.splits import TEST_SUBSET_SEED, subset
from archsearch.errors import DataError, TestSplitAccessError
from archsearch.spec.data import DataSpec

_reads = 0
_forbidden: list[str] = []


def held_out_reads() -> int:
    """How many times test images/labels were read in this process (loads, folder passes)."""
    return _reads


@contextmanager
def test_split_forbidden(who: str) -> Iterator[None]:
    """Inside this block any read of the test split raises TestSplitAccessError naming `who`."""
    _forbidden.append(who)
    try:
        yield
    finally:
        _forbidden.pop()


def _check_allowed() -> None:
    if _forbidden:
        raise TestSplitAccessError(
            f"{_forbidden[-1]} must not read the test split; only explicit evaluation commands "
            "(evaluate, best, explain, reproduce) may"
        )


def _count_read() -> None:
    global _reads
    _check_allowed()
    _reads += 1


class _TestFolderSource(FolderSource):
    """A FolderSource whose every pass over the files counts as a test read."""

    def raw_batches(
        self, batch_size: int, order: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        _count_read()
        yield from super().raw_batches(batch_size, order)


def _heldout_pool(spec: DataSpec, data_dir: str | Path | None) -> Pool:
    if spec.dataset == "image_folder":
        return folder.heldout_pool(spec.path, spec.test_fraction)  # paths only; files opened per pass
    if spec.dataset in idx.DATASETS:
        pool = idx.heldout_pool(spec.dataset, data_dir)
    elif spec.dataset == "cifar10":
        pool = cifar.heldout_pool(data_dir)
    elif spec.dataset == "digits":
        pool = digits.heldout_pool(spec.test_fraction)
    else:
        raise DataError(f"data.dataset: unknown dataset {spec.dataset!r}")
    _count_read()
    return pool


def load_test(
    spec: DataSpec,
    input_shape: Sequence[int],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
) -> tuple[BatchSource, list[str]]:
    """The test split (data.test_size stratified subset if given), normalised like training.

    Args:
        spec: the data section the model was trained with.
        input_shape: the model's input [C, H, W].
        mean: the normalisation mean used in training (TrainVal.mean).
        std: the normalisation std used in training (TrainVal.std).
        device: where batches are made.
        data_dir: a folder searched first for dataset files.

    Returns:
        (source, class names). The source is never augmented.
    """
    _check_allowed()
    pool = _heldout_pool(spec, data_dir)
    if spec.test_size is not None:
        pool = pool.subset(subset(pool.labels, spec.test_size, "data.test_size", TEST_SUBSET_SEED))
    source = make_source(
        pool, spec, input_shape, device=torch.device(device), mean=mean, std=std,
        folder_source=_TestFolderSource,
    )
    return source, list(pool.classes)
