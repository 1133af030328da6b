"""The text classifier: the offline MiniLM encoder with a new head, on token ids."""

import pytest
import torch

from fl_sim.config.precision import QuantSpec
from fl_sim.data.text import TextCodec
from fl_sim.models import build_model
from fl_sim.quantization.fake_quant_model import fake_quantized, quantizable_layers

CODEC = TextCodec("minilm", 24)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("hf_text", 3, (24,), pretrained="minilm").eval()


def test_logits_for_token_ids_and_padding_changes_nothing(model):
    ids = CODEC.encode(["a warm , funny film", "dull"])
    with torch.no_grad():
        both = model(ids)
        alone = model(ids[1:, :3])  # [CLS] dull [SEP], without the padding columns
    assert both.shape == (2, 3)
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-5)


def test_head_is_drawn_from_the_seed_and_the_encoder_is_pretrained(model):
    torch.manual_seed(0)
    again = build_model("hf_text", 3, (24,), pretrained="minilm")
    torch.manual_seed(1)
    other = build_model("hf_text", 3, (24,), pretrained="minilm")
    sa, sb, sc = model.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    head = [k for k in sa if "classifier" in k and k.endswith("weight")]
    assert head and not torch.equal(sa[head[0]], sc[head[0]])
    enc = "hf.bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(sa[enc], sc[enc])


def test_fake_quantization_reaches_every_linear_layer(model):
    assert len(quantizable_layers(model)) == 6 * 6 + 2  # 6 per encoder layer, pooler, classifier
    ids = CODEC.encode(["a warm , funny film"])
    with torch.no_grad():
        fp = model(ids)
        with fake_quantized(model, QuantSpec(bits=4)):
            q = model(ids)
    assert not torch.allclose(fp, q)


def test_refuses_images_and_a_missing_checkpoint():
    with pytest.raises(ValueError, match="token-id sequences"):
        build_model("hf_text", 2, (1, 28, 28), pretrained="minilm")
    with pytest.raises(ValueError, match="needs model.pretrained"):
        build_model("hf_text", 2, (24,))
