"""Concrete spec → nn.Module. No Optuna, no YAML."""

from __future__ import annotations

import torch.nn as nn

from archsearch.build.backbones import build_backbone, set_frozen, stage_modules
from archsearch.build.stack import build_stack_model
from archsearch.build.summary import Summary, summarize
from archsearch.spec.model import ModelSpec
from archsearch.spec.root import Spec


def build_model(spec: Spec | ModelSpec) -> nn.Module:
    """Build the network a spec describes (weights initialised or loaded, frozen stages applied)."""
    model = spec.model if isinstance(spec, Spec) else spec
    if model.backbone is not None:
        return build_backbone(model)
    return build_stack_model(model)


__all__ = ["Summary", "build_model", "set_frozen", "stage_modules", "summarize"]
