"""How long an attack outlives its last round (pure, on a run's history).

After the colluders' last attack round the federation trains honestly; a quantization backdoor that
persists keeps its ASR in the quantized global model. For each precision evaluated after that round,
the section holds the ASR curve from the last attack round on and the number of honest rounds until
the ASR first falls below ``threshold`` (None while it never did within the run). Precisions are in
the per-round records only where evaluated: set ``evaluation.every_n_rounds: 1`` for full curves.
"""

from __future__ import annotations

from typing import Any

THRESHOLD = 0.5


def persistence(history: list[dict[str, Any]], threshold: float = THRESHOLD) -> dict[str, Any] | None:
    """The persistence section of a run, or None when no round was an attack round or none follows the last.

    Parameters
    ----------
    history
        The run's round records (results.json ``history``): ``round``, ``attack_active`` and
        per-precision ``precisions[name]["backdoor_asr"]``.
    threshold
        The ASR below which the backdoor counts as gone.

    Returns
    -------
    dict or None
        ``last_attack_round``, ``honest_rounds_after`` and, per precision, ``curve`` ([round, ASR] from
        the last attack round on), ``rounds_to_fade`` (honest rounds until ASR < threshold: 0 when it
        was already below at the last attack round, None if it never fell) and ``final_asr``.
    """
    attacked = [h["round"] for h in history if h.get("attack_active")]
    if not attacked:
        return None
    last = max(attacked)
    after = [h for h in history if h["round"] >= last]
    if len(after) < 2:
        return None
    by_precision: dict[str, Any] = {}
    for name in after[-1].get("precisions", {}):
        curve = [
            [h["round"], h["precisions"][name]["backdoor_asr"]]
            for h in after
            if name in h.get("precisions", {}) and h["precisions"][name].get("backdoor_asr") is not None
        ]
        if len(curve) < 2:
            continue
        faded = next((r - last for r, asr in curve if asr < threshold), None)  # the curve starts at the last attack round
        by_precision[name] = {"curve": curve, "rounds_to_fade": faded, "final_asr": curve[-1][1]}
    return {
        "threshold": threshold,
        "last_attack_round": last,
        "honest_rounds_after": after[-1]["round"] - last,
        "precisions": by_precision,
    }
