"""Explain a trained model: Grad-CAM, filters, feature maps, class correlation, error gallery, 2-D maps.

Each module computes plain numpy records from a built model and renders them separately as PNGs
(Pillow only); `explain_run` draws them all for a run directory or export bundle.
"""

from archsearch.report.explain.collect import Predictions, images_at, predict, stratified_sample
from archsearch.report.explain.correlation import Correlation, class_correlation, render_correlation
from archsearch.report.explain.embed import Embedding, embed_2d, render_embedding
from archsearch.report.explain.filters import feature_maps, first_layer_filters, render_feature_maps, render_filters
from archsearch.report.explain.gallery import misclassified, render_gallery
from archsearch.report.explain.gradcam import GradCam, grad_cam, peak_position, render_gradcam
from archsearch.report.explain.layers import ExplainError, classifier, conv_layers, default_layer, find_layer
from archsearch.report.explain.run import FIGURES, ExplainResult, explain_run

__all__ = [
    "FIGURES",
    "Correlation",
    "Embedding",
    "ExplainError",
    "ExplainResult",
    "GradCam",
    "Predictions",
    "class_correlation",
    "classifier",
    "conv_layers",
    "default_layer",
    "embed_2d",
    "explain_run",
    "feature_maps",
    "find_layer",
    "first_layer_filters",
    "grad_cam",
    "images_at",
    "misclassified",
    "peak_position",
    "predict",
    "render_correlation",
    "render_embedding",
    "render_feature_maps",
    "render_filters",
    "render_gallery",
    "render_gradcam",
    "stratified_sample",
]
