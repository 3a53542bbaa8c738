"""DialogueLoader: padding, mask, bucketing, shuffling, modality subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcef.data import Batch, DataError, DialogueLoader


def all_batches(loader) -> list[Batch]:
    return list(loader)


def test_padding_and_mask_match_the_dialogues(tiny_dataset):
    loader = DialogueLoader(tiny_dataset, "train", batch_size=3)
    assert len(loader) == 3 and len(all_batches(loader)) == 3
    seen = []
    for batch in loader:
        lengths = [len(tiny_dataset.dialogues[d]) for d in batch.dialogue_ids]
        b, t = batch.mask.shape
        assert b == len(batch.dialogue_ids) and t == max(lengths)
        for m, dim in tiny_dataset.dims.items():
            assert batch.features[m].shape == (b, t, dim) and batch.features[m].dtype == torch.float32
        for row, did in enumerate(batch.dialogue_ids):
            dialogue, n = tiny_dataset.dialogues[did], lengths[row]
            assert batch.mask[row].tolist() == [True] * n + [False] * (t - n)
            for m in tiny_dataset.modalities:
                np.testing.assert_array_equal(batch.features[m][row, :n].numpy(), dialogue.features[m])
                assert not batch.features[m][row, n:].any()
            assert batch.labels[row, :n].tolist() == dialogue.labels.tolist()
            assert (batch.labels[row, n:] == -1).all()
            assert batch.speakers[row, :n].tolist() == dialogue.speakers.tolist()
            assert (batch.speakers[row, n:] == tiny_dataset.n_speakers).all()
        seen += batch.dialogue_ids
    assert seen == tiny_dataset.splits["train"]  # no shuffle: split order
    assert batch.n_utterances == sum(len(tiny_dataset.dialogues[d]) for d in batch.dialogue_ids)


def test_bucketing_cuts_padding_and_keeps_every_dialogue_once(small_dataset):
    def padding(loader):
        return sum(int((~b.mask).sum()) for b in loader)

    plain = DialogueLoader(small_dataset, "train", batch_size=16)
    bucketed = DialogueLoader(small_dataset, "train", batch_size=16, bucket=True, shuffle=True, seed=1)
    ids = [d for b in bucketed for d in b.dialogue_ids]
    assert sorted(ids) == sorted(small_dataset.splits["train"])
    assert padding(bucketed) < padding(plain) / 3
    for batch in bucketed:
        lengths = batch.mask.sum(1)
        assert lengths.tolist() == sorted(lengths.tolist(), reverse=True)  # sorted within a bucket


def test_shuffle_is_seeded_per_epoch(tiny_dataset):
    def order(loader):
        return [d for b in loader for d in b.dialogue_ids]

    a = DialogueLoader(tiny_dataset, "train", batch_size=2, shuffle=True, seed=5)
    b = DialogueLoader(tiny_dataset, "train", batch_size=2, shuffle=True, seed=5)
    epochs_a = [order(a) for _ in range(4)]
    assert epochs_a == [order(b) for _ in range(4)]  # same seed, same sequence of epochs
    assert len({tuple(o) for o in epochs_a}) > 1  # reshuffled between epochs
    a.set_epoch(2)
    assert order(a) == epochs_a[2]
    assert sorted(epochs_a[0]) == sorted(tiny_dataset.splits["train"])
    bucketed = DialogueLoader(tiny_dataset, "train", batch_size=2, shuffle=True, bucket=True, seed=5)
    batch_orders = {tuple(tuple(b.dialogue_ids) for b in bucketed) for _ in range(5)}
    assert len(batch_orders) > 1 and len({frozenset(o) for o in batch_orders}) == 1  # same buckets, new order


@pytest.mark.device
def test_modality_subset_and_errors(tiny_dataset, device):
    loader = DialogueLoader(tiny_dataset, "test", modalities=["audio"], device=device)
    batch = next(iter(loader))
    assert list(batch.features) == ["audio"] and batch.features["audio"].device.type == torch.device(device).type
    assert batch.mask.device.type == batch.labels.device.type == torch.device(device).type
    with pytest.raises(DataError, match="no modality"):
        DialogueLoader(tiny_dataset, "test", modalities=["smell"])
    with pytest.raises(KeyError):
        DialogueLoader(tiny_dataset, "dev")


def test_transcript_only_dataset_batches(tiny_dataset):
    import dataclasses

    from mcef.data import Dialogue

    text_only = dataclasses.replace(
        tiny_dataset,
        dialogues={k: Dialogue(k, {}, d.speakers, d.labels) for k, d in tiny_dataset.dialogues.items()},
    )
    batch = next(iter(DialogueLoader(text_only, "train", batch_size=4)))
    assert batch.features == {} and batch.labels.shape[0] == 4


def test_memory_mapped_project_dataset_loads_without_warnings(tiny_dataset, tmp_path):
    import warnings

    from mcef.data import load_project, save_dataset

    mapped = load_project(save_dataset(tiny_dataset, tmp_path / "ds"), mmap=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read-only memory maps must be copied, not wrapped
        batches = list(DialogueLoader(mapped, "train", batch_size=4))
    reference = list(DialogueLoader(tiny_dataset, "train", batch_size=4))
    for a, b in zip(batches, reference, strict=True):
        assert all(torch.equal(a.features[m], b.features[m]) for m in a.features)
