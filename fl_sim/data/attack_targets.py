"""The attack's targets as data: the targeted-sample attack's x*, and checks of the attack's labels.

The labels are checked against the dataset before a federation starts, so that a mistake is one line.
"""

from __future__ import annotations

import torch

from fl_sim.config.schema import AttackConfig
from fl_sim.data.federated import FederatedData
from fl_sim.data.tensors import ExampleSet


def target_sample(data: FederatedData, attack: AttackConfig) -> ExampleSet | None:
    """Return the targeted-sample attack's input x* (one test image, with its true label), if set."""
    if attack.target_sample is None:
        return None
    if attack.target_sample >= len(data.test):
        raise ValueError(f"attack.target_sample {attack.target_sample} is outside the test set ({len(data.test)} images)")
    return data.test.subset(torch.tensor([attack.target_sample]))


def check_attack_targets(data: FederatedData, attack: AttackConfig) -> None:
    """Raise a ValueError naming the first attack label or index that does not fit ``data``."""
    if attack.num_malicious == 0:
        return
    c = data.num_classes
    if attack.target_label >= c:
        raise ValueError(f"attack.target_label {attack.target_label} is not a class of {data.name} (classes 0..{c - 1})")
    source = attack.params.get("source_label")
    if isinstance(source, int) and source >= c:
        raise ValueError(f"attack.params.source_label {source} is not a class of {data.name} (classes 0..{c - 1})")
    star = target_sample(data, attack)
    if star is not None and int(star.y[0]) == attack.target_label:
        raise ValueError(
            f"attack.target_sample {attack.target_sample} already is of class target_label "
            f"{attack.target_label}: pick an image of another class"
        )
