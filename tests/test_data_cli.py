"""`mcef data info`, `mcef data synth` and `mcef data convert` through the real CLI entry point."""

from __future__ import annotations

from mcef.cli import main
from mcef.data import load_dataset


def test_synth_then_info(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synth", str(out), "--seed", "4", "--n-train", "10", "--n-test", "3", "--dims", "4", "5", "6"]) == 0
    ds = load_dataset(out)
    assert ds.dims == {"text": 4, "audio": 5, "visual": 6} and len(ds.splits["test"]) == 3
    capsys.readouterr()
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "name: synthetic" in text and "dialogues: 13" in text
    assert "modalities: text 4, audio 5, visual 6" in text and "speakers: 2 (A, B)" in text
    assert "valid split: seeded 10% of training dialogues (1 of 10, seed 4)" in text
    test_line = next(line for line in text.splitlines() if line.strip().startswith("test"))
    assert test_line.split()[3:] == [str(c) for c in ds.class_counts("test").tolist()]


def test_info_on_real_iemocap_transcripts(real_data, capsys):
    assert main(["data", "info", str(real_data / "iemocap_text.pkl")]) == 0
    text = capsys.readouterr().out
    assert "dialogues: 151  utterances: 7,433" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("  ")}
    assert rows["train"][:2] == ["108", "5,163"] and rows["valid"][:2] == ["12", "647"]
    assert rows["test"] == ["31", "1,623", "144", "245", "384", "170", "299", "381"]
    assert "modalities: none (transcripts only)" in text and "valid split: from the file" in text


def test_convert_and_clear_errors(tmp_path, capsys, tiny_dataset):
    from test_data_readers import write_sdt_iemocap

    source = write_sdt_iemocap(tiny_dataset, tmp_path / "f.pkl")
    assert main(["data", "convert", str(source), str(tmp_path / "conv"), "--text-layer", "roberta4"]) == 0
    assert load_dataset(tmp_path / "conv").meta["text_layer"] == "roberta4"
    assert main(["data", "info", str(tmp_path / "absent.pkl")]) == 1
    assert "not found; looked in" in capsys.readouterr().err
