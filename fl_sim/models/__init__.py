"""Model zoo: registered constructors ``(num_classes, in_shape, **options) -> nn.Module``."""

from fl_sim.models import cnn, text  # noqa: F401  (registers the models)
from fl_sim.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model"]
