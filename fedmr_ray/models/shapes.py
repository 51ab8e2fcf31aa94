"""Which inputs a model takes: a mismatch is a ConfigError naming both."""

from __future__ import annotations

from collections.abc import Callable

from fedmr_ray.errors import SettingError


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def require_image(model: str, input_shape: tuple[int, ...], needs: str,
                  accepts: Callable[[int, int, int], bool]) -> tuple[int, int, int]:
    """(channels, height, width) of an image input the model accepts, else a ConfigError."""
    if len(input_shape) != 3 or not accepts(*input_shape):
        raise SettingError("model", "--model", model, f"needs {needs}, not input of shape {shape_text(input_shape)}",
                           quote=False)
    return input_shape  # type: ignore[return-value]
