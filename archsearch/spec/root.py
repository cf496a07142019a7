"""The whole spec: model + data + train + search."""

from __future__ import annotations

from pydantic import Field, model_validator

from archsearch.spec.base import StrictModel
from archsearch.spec.data import DataSpec
from archsearch.spec.model import ModelSpec
from archsearch.spec.search import SearchSpec
from archsearch.spec.train import TrainSpec


class Spec(StrictModel):
    """A complete experiment. Only `model` is required; the other sections have defaults."""

    name: str | None = None
    description: str | None = None
    model: ModelSpec
    data: DataSpec = DataSpec()
    train: TrainSpec = TrainSpec()
    search: SearchSpec = Field(SearchSpec(), description="used by `archsearch run`")

    @model_validator(mode="after")
    def _stage_settings_need_a_backbone(self) -> "Spec":
        used = [f"train.{k}" for k in ("lr_multipliers", "unfreeze") if getattr(self.train, k)]
        if used and self.model.backbone is None:
            raise ValueError(f"{' and '.join(used)} {'act' if len(used) > 1 else 'acts'} on the stages of "
                             "model.backbone, but the model is a layer stack (it trains all its layers at train.lr): "
                             f"remove {'them' if len(used) > 1 else 'it'}")
        return self

    @model_validator(mode="after")
    def _unfreeze_what_is_frozen(self) -> "Spec":
        bb, unfreeze = self.model.backbone, self.train.unfreeze
        if bb is None or unfreeze is None:
            return self
        if not bb.freeze:
            raise ValueError("train.unfreeze is set but model.backbone.freeze is empty: nothing is frozen to unfreeze")
        never = [s for s in unfreeze.stages or () if s not in bb.freeze]
        if never:
            raise ValueError(f"train.unfreeze.stages {never} are not in model.backbone.freeze {list(bb.freeze)}")
        return self
