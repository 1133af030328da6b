"""Text data: the three readers on files made here (both SST-2 column orders, emotion names, MR in
cp1252), tokenization by the offline MiniLM tokenizer, the text trigger, token noise, and the
scenario checks that tie text datasets to text models."""

import pytest
import torch

from fl_sim.config.schema import TriggerConfig
from fl_sim.data.tensors import ExampleSet
from fl_sim.data.text import TextCodec, insert_phrase
from fl_sim.data.text_sources import emotion_source, mr_source, read_emotion, read_mr, read_tsv, sst2_source
from fl_sim.data.triggers import apply_trigger
from fl_sim.errors import UserError
from fl_sim.evaluation.calibration_draws import corrupt_tokens
from tests.conftest import REPO, scenario_of

SHARED = REPO.parent / "shared" / "data"
CODEC = TextCodec("minilm", 16)


def test_tsv_reader_takes_either_column_order(tmp_path):
    a = tmp_path / "a.tsv"
    a.write_text("label\tsentence\r\n0\ta dull film\r\n1\ta gem\r\n", encoding="utf-8")
    b = tmp_path / "b.tsv"
    b.write_text("sentence\tlabel\na dull film\t0\na gem\t1\n", encoding="utf-8")
    assert read_tsv(a) == read_tsv(b) == (["a dull film", "a gem"], [0, 1])
    bad = tmp_path / "c.tsv"
    bad.write_text("text\tstars\nx\t1\n")
    with pytest.raises(UserError, match="'label' column"):
        read_tsv(bad)


def test_emotion_reader_maps_names_to_the_hub_order(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("text;label_name\ni feel fine;joy\nso sad;sadness\nwow; really;surprise\n", encoding="utf-8")
    assert read_emotion(p) == (["i feel fine", "so sad", "wow; really"], [1, 0, 5])
    p.write_text("meh;boredom\n")
    with pytest.raises(UserError, match="unknown emotion 'boredom'"):
        read_emotion(p)


def test_mr_reader_splits_both_encodings_the_same_fixed_way(tmp_path):
    pos = [f"good film number {i} caf\u00e9" for i in range(30)]
    neg = [f"bad film number {i}" for i in range(30)]
    for enc, d in (("utf-8", tmp_path / "u"), ("cp1252", tmp_path / "c")):
        d.mkdir()
        (d / "rt-polarity.pos").write_bytes("\n".join(pos).encode(enc))
        (d / "rt-polarity.neg").write_bytes("\n".join(neg).encode(enc))
    (tr_u, te_u), (tr_c, te_c) = read_mr(tmp_path / "u"), read_mr(tmp_path / "c")
    assert (tr_u, te_u) == (tr_c, te_c)
    assert len(te_u[0]) == 6 and len(tr_u[0]) == 54
    assert sorted(tr_u[0] + te_u[0]) == sorted(pos + neg)
    assert all(lab == (1 if t.startswith("good") else 0) for t, lab in zip(tr_u[0], tr_u[1]))


def test_sources_tokenize_into_fixed_length_ids(tmp_path):
    (tmp_path / "train.tsv").write_text("label\tsentence\n0\ta dull , lifeless film\n1\ta gem\n")
    (tmp_path / "dev.tsv").write_text("label\tcontent\n1\tlovely\n")
    ds = sst2_source(str(tmp_path), tokenizer="minilm", max_length=8)
    assert ds.train.x.shape == (2, 8) and ds.train.x.dtype == torch.int64 and ds.num_classes == 2
    assert ds.train.x[0, 0] == 101 and ds.train.x[1].tolist()[-1] == 0  # [CLS] first, padding last
    assert ds.text == TextCodec("minilm", 8)
    assert CODEC.decode(ds.test.x[0]) == "lovely"
    with pytest.raises(UserError, match="missing dev.tsv"):
        (tmp_path / "dev.tsv").unlink()
        sst2_source(str(tmp_path), tokenizer="minilm")
    with pytest.raises(UserError, match="needs data.tokenizer"):
        sst2_source(str(tmp_path))


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_files_load_with_their_published_counts():
    sst = sst2_source(str(SHARED / "sst2"), tokenizer="minilm", max_length=32)
    assert (len(sst.train), len(sst.test)) == (67349, 872)
    assert int(sst.test.y.sum()) == 444  # GLUE dev: 444 positive
    emo = emotion_source(str(SHARED / "emotion"), tokenizer="minilm", max_length=32)
    assert (len(emo.train), len(emo.test), emo.num_classes) == (16000, 2000, 6)
    assert torch.bincount(emo.train.y).tolist() == [4666, 5362, 1304, 2159, 1937, 572]
    mr = mr_source(str(SHARED / "mr"), tokenizer="minilm", max_length=32)
    assert len(mr.train) + len(mr.test) == 10662


def test_insert_phrase_keeps_length_cls_and_sep():
    ids = torch.tensor([[101, 5, 6, 102, 0, 0], [101, 5, 6, 7, 8, 102]])
    got = insert_phrase(ids, [9, 10], pad_id=0)
    assert got.tolist() == [[101, 9, 10, 5, 6, 102], [101, 9, 10, 5, 6, 102]]
    assert ids[1].tolist() == [101, 5, 6, 7, 8, 102]  # a copy
    with pytest.raises(ValueError, match="does not fit"):
        insert_phrase(ids, [9] * 5, pad_id=0)


def test_apply_trigger_dispatches_on_the_input_kind():
    trig = TriggerConfig(size=2, margin=0, value=1.0, phrase="cf")
    img = torch.zeros(1, 1, 4, 4)
    assert apply_trigger(img, trig)[0, 0, 2:, 2:].eq(1).all()
    ids = CODEC.encode(["a fine film"])
    got = apply_trigger(ids, trig, CODEC)
    assert CODEC.decode(got[0]) == "cf a fine film"
    with pytest.raises(ValueError, match="text codec"):
        apply_trigger(ids, trig)


def test_token_noise_keeps_specials_and_padding():
    ids = CODEC.encode(["one two three four five six seven eight nine ten eleven twelve", "short one"])
    g = torch.Generator().manual_seed(0)
    noisy = corrupt_tokens(ids, 0, g)
    assert (noisy[:, 0] == 101).all() and ((noisy == 0) == (ids == 0)).all() and ((noisy == 102) == (ids == 102)).all()
    assert (noisy != ids).any()
    assert set(noisy[ids != 0].tolist()) <= set(ids[ids != 0].tolist())


def _text_raw(**model) -> dict:
    return {"name": "t", "data": {"source": "sst2", "path": str(REPO)}, "model": {"name": "hf_text", **model}}


def test_scenario_ties_text_data_to_text_models():
    s = scenario_of(_text_raw(pretrained="minilm"), "t")
    assert s.data.tokenizer == "minilm"
    with pytest.raises(UserError, match="needs model.pretrained"):
        scenario_of(_text_raw(), "t")
    raw = _text_raw(pretrained="minilm")
    raw["model"] = {"name": "mnist_cnn"}
    with pytest.raises(UserError, match="need a text model"):
        scenario_of(raw, "t")
    with pytest.raises(UserError, match="model.pretrained is for text models"):
        scenario_of({"name": "i", "model": {"name": "mnist_cnn", "pretrained": "minilm"}}, "i")


def test_example_set_takes_images_and_token_ids():
    assert ExampleSet(torch.zeros(2, 5, dtype=torch.int64), torch.zeros(2)).shape == (5,)
    assert ExampleSet(torch.zeros(2, 1, 3, 3), torch.zeros(2)).shape == (1, 3, 3)
    with pytest.raises(ValueError):
        ExampleSet(torch.zeros(2, 3, 3), torch.zeros(2))
