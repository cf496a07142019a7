"""Concrete spec → nn.Module. No Optuna, no YAML."""

from __future__ import annotations

import torch.nn as nn

from archsearch.build.backbones import build_backbone, set_frozen, stage_modules
from archsearch.build.stack import build_stack_model
from archsearch.build.summary import Summary, summarize
from archsearch.spec.model import ModelSpec
from archsearch.spec.root import Spec


def build_model(spec: Spec | ModelSpec, pretrained: bool = True) -> nn.Module:
    """Build the network a spec describes (weights initialised or loaded, frozen stages applied).

    pretrained=False skips a backbone's pretrained weights (same modules and state-dict keys): for a
    model whose every weight comes from a checkpoint next, or that is only counted, so neither the
    torch cache nor the original weights file need be there."""
    model = spec.model if isinstance(spec, Spec) else spec
    if model.backbone is not None:
        if not pretrained and model.backbone.pretrained != "none":
            model = model.model_copy(update={"backbone": model.backbone.model_copy(update={"pretrained": "none"})})
        return build_backbone(model)
    return build_stack_model(model)


__all__ = ["Summary", "build_model", "set_frozen", "stage_modules", "summarize"]
