"""Experiment configs: YAML round trip, dotted overrides, clear errors."""

from pathlib import Path

import pytest

from mcef.config import (ConfigError, ExperimentConfig, config_to_dict, dump_config, load_config, save_config,
                         with_changes)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("name", ["paper", "paper_reference_loss", "sdt", "smoke", "synthetic_small"])
def test_shipped_configs_load_and_round_trip(name, tmp_path):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.name == name
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_paper_config_is_the_reference_recipe():
    c = load_config(CONFIGS / "paper.yaml")
    assert (c.model.hidden, c.model.n_heads, c.model.n_self_heads, c.model.dropout) == (512, 8, 4, 0.5)
    assert (c.loss.fused_ce, c.loss.soft_hgr, c.loss.modality_ce, c.loss.kl) == (0.3, 0.4, 0.1, 0.0)
    assert (c.train.lr, c.train.weight_decay, c.train.batch_size, c.train.epochs) == (1e-4, 1e-5, 16, 150)
    assert load_config(CONFIGS / "paper_reference_loss.yaml").loss.hgr_mode == "reference"


def test_dotted_overrides_parse_values():
    c = load_config(CONFIGS / "smoke.yaml", ["train.lr=1e-3", "model.modalities=[text, audio]",
                                             "model.precision=bfloat16", "model.hidden=48",
                                             "data.synthetic.n_train=7", "data.text.encoder=all-mpnet-base-v2"])
    assert c.train.lr == 1e-3 and isinstance(c.train.lr, float)
    assert c.model.modalities == ("text", "audio")
    assert c.model.precision == "bfloat16" and c.model.hidden == 48
    assert c.data.text.encoder == "all-mpnet-base-v2" and c.data.text.context == "none"
    assert c.data.synthetic["n_train"] == 7 and c.data.synthetic["n_test"] == 4  # merged, not replaced


def test_defaults_and_with_changes():
    c = load_config(None)
    assert c == ExperimentConfig()
    changed = with_changes(c, name="x", train={"seed": 3})
    assert (changed.name, changed.train.seed, changed.train.lr) == ("x", 3, c.train.lr)
    assert "hidden: 512" in dump_config(c)
    assert config_to_dict(c)["model"]["modalities"] is None


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown key 'train.lrr'"),
    ("optimizer.lr=1", "unknown key 'optimizer'"),
    ("train.epochs=ten", "train.epochs: expected an integer, got 'ten'"),
    ("train.lr=fast", "train.lr: expected a number"),
    ("model.packed=3", "model.packed: expected true or false"),
    ("model.fusion=sum", "model.fusion: expected one of"),
    ("model.modalities=[text, smell]", "model: modalities: expected distinct names"),
    ("model.hidden=30", "model: n_heads: expected a divisor of hidden=30"),
    ("model.dropout=1.5", "model: dropout: expected a probability"),
    ("loss.temperature=0", "loss: LossWeights.temperature: expected > 0"),
    ("data.text.context=future", "data.text.context: expected one of"),
    ("data.text.finetune={train_layers: 0}", "data.text.finetune.train_layers must be >= 1, got 0"),
    ("data.text.finetune={train_layers: top}", "data.text.finetune.train_layers: expected int or null, got 'top'"),
    ("data.modalities=[text]", "data.modalities is now model.modalities"),
    ("train.bf16=true", "train.bf16 is gone: model.precision"),
    ("train.epochs=0", "train.epochs must be at least 1"),
    ("train.early_stopping=-1", "train.early_stopping must be 0"),
    ("train.plateau_patience=-2", "train.plateau_patience must be 0"),
    ("train.lr", "expected KEY=VALUE"),
])
def test_bad_overrides_give_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config(CONFIGS / "smoke.yaml", [override])


def test_model_and_loss_sections_are_the_model_and_loss_classes():
    """One schema per concept: the config's sections are MCEFConfig and LossWeights themselves."""
    from mcef.losses import LossWeights
    from mcef.model import MCEFConfig

    c = load_config(CONFIGS / "paper.yaml")
    assert type(c.model) is MCEFConfig and type(c.loss) is LossWeights
    import mcef.config

    assert not hasattr(mcef.config, "ModelConfig") and not hasattr(mcef.config, "LossConfig")


def test_bad_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 3\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "train.learning_rate" in str(err.value)
    path.write_text("model: [1, 2]\n")
    with pytest.raises(ConfigError, match="model: expected a mapping"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
