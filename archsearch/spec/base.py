"""Shared pydantic base and small value types for every spec section."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveInt = Annotated[int, Field(gt=0, strict=False)]
NonNegInt = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]
Shape = tuple[int, ...]


class StrictModel(BaseModel):
    """Immutable, unknown keys refused: a typo in YAML is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NamedOption(StrictModel):
    """An option written either as a bare name (`cosine`) or a mapping (`{name: step, gamma: 0.5}`)."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        return value


def fmt_shape(shape: Shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"
