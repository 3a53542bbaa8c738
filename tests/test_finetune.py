"""Fine-tuning the text encoder as an utterance classifier with a dialogue window: inputs, batches, selection on
validation only, determinism, resumption, and the feature cache it keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_features import (SHARED, encoder, four_dialogue_subset, iemocap_subset, needs_encoder,  # noqa: F401 (fixtures)
                           small_corpus)

from mcef.data import load_dataset
from mcef.data.dataset import Dialogue, DialogueDataset
from mcef.features import finetune
from mcef.features.finetune import (TARGET_MARK, Item, _lr_factor, bucketed_batches, class_weight_vector,
                                    encode_items, epoch_seconds, utterance_items)
from mcef.features.text import FineTuneConfig, TextFeatureConfig, cache_key, cached_text_features

TINY = FineTuneConfig(epochs=2, batch_size=4, max_seq_length=32, class_weights=("none", "train"), early_stopping=0,
                      bucket_batches=2, seed=3)
WINDOW = TextFeatureConfig(context="window", window_before=2, window_after=1, finetune=TINY)


def dialogue(sentences, speakers, labels) -> Dialogue:
    return Dialogue("d", {}, np.array(speakers), np.array(labels), sentences)


def test_a_window_tags_speakers_marks_the_target_and_cuts_at_the_dialogue_edges():
    d = dialogue(["hi", "how are you", "fine", "bye"], [0, 1, 0, 1], [0, 1, 2, 3])
    items = utterance_items(d, ("A", "B"), before=2, after=1, separator="[SEP]", sentences=d.sentences)
    assert items[0] == Item(f"{TARGET_MARK} A: hi", "[SEP] B: how are you", 0)
    assert items[2] == Item(f"{TARGET_MARK} A: fine", "A: hi B: how are you [SEP] B: bye", 2)
    assert items[3] == Item(f"{TARGET_MARK} B: bye", "B: how are you A: fine", 3)  # nothing follows: no separator
    assert utterance_items(d, ("A", "B"), 0, 0, "[SEP]", d.sentences)[1].context == ""


def test_length_buckets_cover_every_item_once_in_batches_of_similar_length():
    lengths = np.random.default_rng(0).integers(5, 100, size=103)
    batches = bucketed_batches(lengths, 8, 4, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert all(len(b) <= 8 for b in batches)
    assert all(np.all(np.diff(lengths[b]) >= 0) for b in batches)  # sorted inside their bucket
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    shuffled = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.random.default_rng(2).permutation(103), 13)])
    assert spread < shuffled / 2  # little padding
    again = bucketed_batches(lengths, 8, 4, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))


def test_class_weights_and_the_learning_rate_schedule():
    assert class_weight_vector("none", np.array([0, 1]), 2) is None
    weights = class_weight_vector("train", np.array([0, 0, 0, 1]), 3).numpy()
    assert weights[2] == 0 and weights[1] == pytest.approx(3 * weights[0]) and weights[:2].mean() == pytest.approx(1)
    factors = [_lr_factor(step, 100, 0.1) for step in range(100)]
    assert factors[9] == pytest.approx(1.0) and factors[0] == pytest.approx(0.1) and factors[-1] == pytest.approx(1 / 90)
    assert np.all(np.diff(factors[10:]) < 0)


def test_every_fine_tuning_setting_is_part_of_the_feature_cache_key(tmp_path):
    source = small_corpus(tmp_path)
    frozen = TextFeatureConfig()
    keys = {cache_key(source, frozen), cache_key(source, WINDOW)}
    for field in dataclasses.fields(FineTuneConfig):
        value = getattr(TINY, field.name)
        changed = (not value if isinstance(value, bool) else ("none",) if field.name == "class_weights"
                   else 1 if value is None else value + 1)
        keys.add(cache_key(source, dataclasses.replace(WINDOW, finetune=dataclasses.replace(TINY, **{field.name: changed}))))
    for change in ({"window_before": 3}, {"window_after": 0}, {"pooling": "cls"}, {"finetune": None}):
        keys.add(cache_key(source, dataclasses.replace(WINDOW, **change)))
    assert len(keys) == 2 + len(dataclasses.fields(FineTuneConfig)) + 4
    # the fields added for fine-tuning, at their defaults, leave the keys of earlier caches as they were
    assert "finetune" not in frozen.key_fields() and "window_before" not in frozen.key_fields()
    assert "train_layers" not in WINDOW.key_fields()["finetune"]


@needs_encoder
def test_training_the_top_layers_leaves_the_layers_below_as_shipped_and_without_dropout(iemocap_subset, encoder):  # noqa: F811
    import torch

    config = dataclasses.replace(WINDOW, finetune=dataclasses.replace(TINY, train_layers=2))
    model, tokenizer = finetune._fresh_classifier(config, 6, torch.device("cpu"), seed=0)
    layers = model.encoder.encoder.layer
    before = {name: p.detach().clone() for name, p in model.encoder.named_parameters()}
    items = finetune.dataset_items(iemocap_subset, config, tokenizer.sep_token)
    batch = [i for did in iemocap_subset.splits["train"] for i in items[did]][:8]
    inputs = finetune.Inputs(tokenizer, 32, paired=True, device=torch.device("cpu"))
    model.train()
    assert not model.encoder.embeddings.training and not layers[-3].training and layers[-2].training
    finetune._train_step(model, finetune._optimizer(model, config.finetune), inputs, batch, torch.nn.CrossEntropyLoss())
    top = {f"encoder.layer.{k}." for k in (len(layers) - 2, len(layers) - 1)}
    for name, p in model.encoder.named_parameters():
        trained = any(name.startswith(prefix) for prefix in top)
        assert p.requires_grad == trained and (p.grad is not None) == trained, name
        assert torch.equal(p, before[name]) != trained, name
    with pytest.raises(ValueError, match="data.text.finetune.train_layers: expected 1 to 6"):
        finetune._fresh_classifier(dataclasses.replace(config, finetune=dataclasses.replace(TINY, train_layers=7)), 6,
                                   torch.device("cpu"), seed=0)


@pytest.fixture(scope="module")
def tuned(iemocap_subset, encoder, tmp_path_factory):  # noqa: F811 (fixtures)
    """The subset fine-tuned with TINY: (features, record)."""
    return encode_items(iemocap_subset, WINDOW, device="cpu", workdir=tmp_path_factory.mktemp("tuned"), log=lambda s: None)


@needs_encoder
@pytest.mark.slow
def test_fine_tuning_end_to_end_on_real_utterances(tuned, iemocap_subset):  # noqa: F811
    features, record = tuned
    assert set(features) == set(iemocap_subset.dialogues)
    assert all(f.shape == (len(iemocap_subset.dialogues[d]), 384) and f.dtype == np.float32 for d, f in features.items())
    assert record["fine_tuned"] and set(record["candidates"]) == {"none", "train"}
    chosen = record["candidates"][record["class_weights"]]
    assert record["selected_epoch"] == chosen["best_epoch"] and 1 <= chosen["best_epoch"] <= 2
    assert chosen["best_valid_weighted_f1"] == max(r["valid_weighted_f1"] for r in chosen["history"])
    assert all(r["valid_weighted_f1"] <= chosen["best_valid_weighted_f1"] for c in record["candidates"].values()
               for r in c["history"])  # the candidate kept has the best validation score of all
    assert set(record["classifier"]) == {"train", "valid", "test"}


@needs_encoder
@pytest.mark.slow
def test_the_same_seed_gives_the_same_features_and_test_labels_change_nothing_chosen(tuned, iemocap_subset, tmp_path):  # noqa: F811
    features, record = tuned
    scrambled = {did: dataclasses.replace(d, labels=(d.labels + 1) % len(iemocap_subset.label_names))
                 if did in iemocap_subset.splits["test"] else d for did, d in iemocap_subset.dialogues.items()}
    again, record_again = encode_items(dataclasses.replace(iemocap_subset, dialogues=scrambled), WINDOW, device="cpu",
                                       workdir=tmp_path, log=lambda s: None)
    # every split's features, to float32 rounding (multi-threaded CPU kernels may sum in another order)
    assert all(np.allclose(features[d], again[d], atol=1e-4) for d in features)

    def validation(rec):
        return {k: [round(row["valid_weighted_f1"], 4) for row in c["history"]] for k, c in rec["candidates"].items()}

    assert validation(record_again) == validation(record) and record_again["class_weights"] == record["class_weights"]
    assert record_again["selected_epoch"] == record["selected_epoch"]


@needs_encoder
@pytest.mark.slow
def test_an_interrupted_fine_tuning_resumes_at_its_last_epoch(tuned, iemocap_subset, tmp_path):  # noqa: F811
    one = dataclasses.replace(WINDOW, finetune=dataclasses.replace(TINY, class_weights=("none",)))

    def stop_after_first_epoch(line: str) -> None:
        if line.startswith("fine-tuning epoch 1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_items(iemocap_subset, one, device="cpu", workdir=tmp_path, log=stop_after_first_epoch)
    lines: list[str] = []
    resumed, record = encode_items(iemocap_subset, one, device="cpu", workdir=tmp_path, log=lines.append)
    assert lines[0].startswith("fine-tuning resumed after epoch 1") and len(record["candidates"]["none"]["history"]) == 2
    whole, _ = encode_items(iemocap_subset, one, device="cpu", workdir=tmp_path / "whole", log=lambda s: None)
    assert all(np.allclose(resumed[d], whole[d], atol=1e-5) for d in whole)


@needs_encoder
@pytest.mark.slow
def test_a_frozen_window_and_the_cache_of_a_fine_tuning(iemocap_subset, encoder, tmp_path):  # noqa: F811
    frozen = dataclasses.replace(WINDOW, finetune=None)
    features, record = encode_items(iemocap_subset, frozen, device="cpu", workdir=tmp_path, log=lambda s: None)
    assert not record["fine_tuned"] and record.get("classifier") == {}
    source = tmp_path / "subset"
    from mcef.data import save_dataset

    save_dataset(iemocap_subset, source)
    small = dataclasses.replace(WINDOW, finetune=dataclasses.replace(TINY, epochs=1, class_weights=("none",)))
    dataset, cached_at, hit = cached_text_features(source, small, cache_dir=tmp_path / "cache", device="cpu")
    assert not hit and not (cached_at.parent / f"{cached_at.name}.finetune").exists()  # checkpoints go once cached
    assert dataset.meta["text_features"]["encoding"]["selected_epoch"] == 1
    from mcef.train import describe_data

    recorded = describe_data(dataset, "here")["text_features"]["encoding"]  # what a run's summary.json keeps
    assert recorded["selected_epoch"] == 1 and set(recorded["classifier"]) == {"train", "valid", "test"}
    assert cached_text_features(source, small, cache_dir=tmp_path / "cache", device="cpu")[2]


def test_a_fine_tuning_seed_left_to_the_run_is_each_runs_seed():
    from mcef.config import load_config
    from mcef.features.pipeline import data_for_run

    config = load_config("configs/real/iemocap_text.yaml", ['data.text.finetune={"epochs": 1}', "train.seed=7"])
    assert config.data.text.finetune.seed is None and data_for_run(config).text.finetune.seed == 7
    fixed = load_config("configs/real/iemocap_text.yaml", ['data.text.finetune={"seed": 2}', "train.seed=7"])
    assert data_for_run(fixed).text.finetune.seed == 2
    assert data_for_run(load_config("configs/real/iemocap_text.yaml")) == load_config("configs/real/iemocap_text.yaml").data
    from mcef.features.cli import _seeded

    assert data_for_run(_seeded(config, 3)).text.finetune.seed == 3  # `mcef features text|baseline --seed 3`
    assert _seeded(config, None) is config


@needs_encoder
@pytest.mark.slow
def test_the_epoch_time_estimate_times_the_training_loops_own_steps(iemocap_subset, encoder, monkeypatch):  # noqa: F811
    """The estimate times ``steps`` real training steps (plus one warm-up) on the epoch's own batches and scales
    their mean to the epoch's batch count; too many steps for the training split is a clear error."""
    seen = []

    def counted_step(model, optimizer, inputs, items, loss_fn):
        seen.append(len(items))
        return real_step(model, optimizer, inputs, items, loss_fn)

    real_step = finetune._train_step
    monkeypatch.setattr(finetune, "_train_step", counted_step)
    estimate = epoch_seconds(iemocap_subset, WINDOW, steps=2, device="cpu", seed=0)
    train_utterances = sum(len(iemocap_subset.dialogues[d]) for d in iemocap_subset.splits["train"])
    assert estimate["train_utterances"] == train_utterances == 12
    assert estimate["batches"] == 3 and len(seen) == 3 and sum(seen) == 12  # two timed steps and the warm-up
    assert estimate["step_seconds"] > 0
    assert estimate["epoch_minutes"] >= round(estimate["step_seconds"] * estimate["batches"] / 60, 1)
    with pytest.raises(ValueError, match="steps must be from 1 to 2"):
        epoch_seconds(iemocap_subset, WINDOW, steps=3, device="cpu", seed=0)


@needs_encoder
@pytest.mark.slow
def test_fine_tuning_on_melds_sentiments_classifies_its_three_sentiments(encoder, tmp_path):  # noqa: F811
    """configs/real/meld_sentiment_finetuned.yaml's labels: the encoder's classifier is one of MELD's 3 sentiments."""
    path = SHARED / "meld_text.pkl"
    if not path.is_file():
        pytest.skip(f"real transcripts absent: {path}")
    full = load_dataset(path, labels="sentiment")
    subset = four_dialogue_subset(full)
    features, record = encode_items(subset, WINDOW, device="cpu", workdir=tmp_path, log=lambda s: None)
    assert full.label_names == ("neutral", "positive", "negative")
    cut = subset.dialogues
    assert set(features) == set(cut) and all(f.shape == (len(cut[d].labels), 384) for d, f in features.items())
    assert set(record["classifier"]["test"]["per_class_f1"]) == set(full.label_names)
