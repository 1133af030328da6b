"""``int8_dynamic``: the evaluation precision that runs PyTorch's real dynamic int8 Linear kernel."""

import pytest
import torch
from torch import nn

from fl_sim.config.precision import PrecisionKind, parse_precision
from fl_sim.data.tensors import ExampleSet
from fl_sim.quantization.real_int8 import dynamic_int8
from fl_sim.quantization.registry import QuantOptions, quantized


def test_precision_name():
    p = parse_precision("int8_dynamic")
    assert p.kind is PrecisionKind.KERNEL and p.bits == 8
    with pytest.raises(ValueError, match="int8_dynamic"):
        parse_precision("int8_dyn")


def test_context_computes_what_the_quantized_copy_computes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 5)).eval()
    x = torch.randn(40, 12)
    calib = ExampleSet(torch.zeros(1, 1, 1, 1), torch.zeros(1))
    with torch.no_grad():
        fp = model(x)
        expected = dynamic_int8(model)(x)
        with quantized(model, "int8_dynamic", QuantOptions(), calib, torch.device("cpu")):
            got = model(x)
        after = model(x)
    assert torch.equal(got, expected)
    assert not torch.equal(got, fp)  # it really quantized
    assert torch.equal(after, fp)  # and the model is restored
