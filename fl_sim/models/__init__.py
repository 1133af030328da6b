"""Model zoo: registered constructors ``(num_classes, in_shape) -> nn.Module``."""

from fl_sim.models.registry import MODELS, build_model
from fl_sim.models import cnn  # noqa: F401  (registers the models)

__all__ = ["MODELS", "build_model"]
