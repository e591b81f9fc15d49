from pathlib import Path

from ameli_ray.retrieval.lexical import LexicalIndex, tokenize


def test_tokenizer_joins_model_numbers_and_units():
    tokens = tokenize("D-Link DCS-1100 camera, 256 GB")
    assert {"dcs", "1100", "dcs1100", "256", "gb", "256gb"} <= set(tokens)


def test_model_number_written_differently_still_matches():
    index = LexicalIndex.build(["Epson lamp ELPLP12", "D-Link DCS1100 network camera", "Koss EQ50"])
    assert index.scores("dcs-1100").argmax() == 1
    assert index.scores("nothing known here").sum() == 0


def test_save_and_load_roundtrip(tmp_path: Path):
    index = LexicalIndex.build(["alpha 128GB", "beta 256GB"])
    files = index.save(tmp_path)
    assert all(f.suffix in (".json", ".npy") for f in files)  # no pickle
    restored = LexicalIndex.load_files({f.name: f.read_bytes() for f in files})
    assert (restored.scores("256 GB") == index.scores("256 GB")).all()
