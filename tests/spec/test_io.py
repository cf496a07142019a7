"""YAML loading and error reporting: every bad input is one SpecError with field path and line."""

from __future__ import annotations

import pytest

from archsearch.errors import SpecError
from archsearch.spec import load_spec, parse_spec
from archsearch.spec.io import apply_overrides, parse_yaml

GOOD = """\
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, out: 8}
    - {type: activation, fn: leaky_relu, slope: 0.1}
    - {type: maxpool}
    - {type: flatten}
    - {type: linear}
train:
  lr: 1e-3
"""


def _problems(text: str, write) -> list:
    with pytest.raises(SpecError) as info:
        load_spec(write("spec.yaml", text))
    return info.value.problems


def test_good_spec_loads_and_reads_exponent_floats(write):
    spec = load_spec(write("s.yaml", GOOD))
    assert spec.train.lr == pytest.approx(1e-3)
    assert isinstance(parse_yaml("x: 1e-3")[0]["x"], float)
    assert parse_yaml("x: 5E+2")[0]["x"] == 500.0
    assert spec.model.shapes()[-1] == (10,)


def test_duplicate_key_is_an_error_with_both_lines(write):
    (p,) = _problems(GOOD + "  lr: 0.1\n", write)
    assert p.path == "train.lr" and p.line == 11 and "line 10" in p.message


@pytest.mark.parametrize(
    "payload",
    ["!!python/object/apply:os.system ['echo hi']", "!!python/name:os.system", "!!set {a, b}"],
)
def test_python_and_custom_tags_are_refused(write, payload):
    (p,) = _problems(f"model: {payload}\n", write)
    assert "tag" in p.message and p.line == 1


def test_invalid_yaml_reports_line_and_column(write):
    (p,) = _problems("model:\n  input: [1, 28\n  layers: x\n", write)
    assert "invalid YAML" in p.message and p.line == 3


def test_unknown_layer_type_suggests_the_closest(write):
    (p,) = _problems(GOOD.replace("type: maxpool", "type: maxpol"), write)
    assert p.path == "model.layers[2]" and p.line == 6
    assert "did you mean 'maxpool'" in p.message and "global_avg_pool" in p.message


def test_unknown_field_suggests_and_names_path_and_line(write):
    (p,) = _problems(GOOD.replace("out: 8}", "out: 8, kernal: 5}"), write)
    assert p.path == "model.layers[0].kernal" and p.line == 4 and "'kernel'" in p.message


@pytest.mark.parametrize(
    ("edit", "path", "needle"),
    [
        ("out: 8}", "model.layers[0].out", "greater than 0"),
        ("out: -3}", "model.layers[0].out", "greater than 0"),
        ("out: many}", "model.layers[0].out", "integer"),
    ],
)
def test_bad_field_values(write, edit, path, needle):
    text = GOOD.replace("out: 8}", edit if edit != "out: 8}" else "}")
    problems = _problems(text, write)
    if edit == "out: 8}":
        assert problems[0].path == path and "missing" in problems[0].message
    else:
        assert problems[0].path == path and needle in problems[0].message and problems[0].line == 4


def test_every_problem_is_listed(write):
    text = GOOD.replace("type: maxpool", "type: pool").replace("lr: 1e-3", "lr: -1\n  epochs: 0")
    paths = {p.path for p in _problems(text, write)}
    assert paths == {"model.layers[2]", "train.lr", "train.epochs"}


def test_shape_that_cannot_propagate_names_layer_and_shape(write):
    text = GOOD.replace("- {type: maxpool}", "- {type: maxpool, kernel: 2}\n" + "    - {type: maxpool, kernel: 16}")
    (p,) = _problems(text, write)
    assert p.path == "model.layers[3]" and p.line == 7
    assert "[8, 14, 14]" in p.message and "16×16" in p.message


def test_stack_that_does_not_end_in_num_classes(write):
    (p,) = _problems(GOOD.replace("    - {type: linear}\n", "    - {type: linear, out: 7}\n"), write)
    assert "num_classes" in p.message and "[7]" in p.message


def test_linear_on_image_input_says_to_flatten(write):
    (p,) = _problems(GOOD.replace("    - {type: flatten}\n", ""), write)
    assert p.path == "model.layers[3]" and "flatten" in p.message


def test_nested_shape_problem_in_repeat_names_inner_layer():
    data = {
        "model": {
            "input": [1, 8, 8],
            "layers": [{"type": "repeat", "n": 5, "layers": [{"type": "conv2d", "out": 4}, {"type": "maxpool"}]}],
        }
    }
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    (p,) = info.value.problems
    assert p.path == "model.layers[0].layers[1]" and "repetition 4 of 5" in p.message


def test_residual_identity_needs_same_shape():
    body = [{"type": "conv2d", "out": 16, "stride": 2}]
    base = {"input": [8, 8, 8], "layers": [None, {"type": "flatten"}, {"type": "linear"}]}
    bad = {**base, "layers": [{"type": "residual", "body": body, "shortcut": "identity"}, *base["layers"][1:]]}
    with pytest.raises(SpecError, match="identity shortcut"):
        parse_spec({"model": bad})
    ok = {**base, "layers": [{"type": "residual", "body": body}, *base["layers"][1:]]}
    assert parse_spec({"model": ok}).model.shapes()[1] == (16, 4, 4)


def test_missing_weights_file_is_a_spec_error(write):
    (p,) = _problems("model:\n  backbone: {name: resnet18, pretrained: nowhere.pth}\n", write)
    assert p.path == "model.backbone.pretrained" and p.line == 2 and "not found" in p.message


def test_layers_xor_backbone(write):
    (p,) = _problems("model:\n  input: [1, 28, 28]\n", write)
    assert "exactly one of" in p.message


def test_missing_file_and_non_mapping(write, tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")
    (p,) = _problems("- just\n- a list\n", write)
    assert "mapping" in p.message and "got list" in p.message
    (p,) = _problems("", write)
    assert p.message.endswith("the file is empty")


def test_overrides_set_nested_fields_and_parse_values():
    data = {"model": {"layers": [{"type": "conv2d", "out": 8}]}, "train": {}}
    out = apply_overrides(data, ["train.lr=1e-2", "model.layers.0.out=16", "data.augment=[hflip]"])
    assert out["train"]["lr"] == 0.01 and out["model"]["layers"][0]["out"] == 16
    assert out["data"]["augment"] == ["hflip"] and data["model"]["layers"][0]["out"] == 8
    with pytest.raises(SpecError, match="key=value"):
        apply_overrides(data, ["train.lr"])
    for key in ("model.layers.5.out=3", "model.layers.5={type: flatten}"):
        with pytest.raises(SpecError, match=r"model.layers has 1 item\(s\), so index 5 is out of range \(0 to 0"):
            apply_overrides(data, [key])


def test_a_value_from_set_is_located_by_the_set_not_by_the_line_it_replaced(write):
    path = write("spec.yaml", GOOD)
    with pytest.raises(SpecError) as info:
        load_spec(path, ["model.layers.0.out=-3", "train.lrr=0.1", "model.layers.1={type: activation, fn: nope}"])
    found = {p.path: str(p) for p in info.value.problems}
    assert found["model.layers[0].out"].startswith("--set model.layers.0.out=-3: "), found
    assert found["train.lrr"].startswith("--set train.lrr=0.1: "), found
    assert found["model.layers[1].fn"].startswith("--set model.layers.1={type: activation, fn: nope}: "), found
    with pytest.raises(SpecError) as info:  # a value the --set did not touch keeps its YAML line
        load_spec(write("bad.yaml", GOOD.replace("slope: 0.1", "slope: -1")), ["train.lr=0.1"])
    assert [str(p) for p in info.value.problems] == [
        "line 5: model.layers[1].slope: Input should be greater than or equal to 0"]


def test_only_problems_that_depend_on_the_dimensions_name_an_assignment(write):
    from archsearch.spec.space import check_space, load_space

    space = load_space(write("space.yaml", GOOD.replace("out: 8}", "out: {choice: [8, -1]}}")), ["train.lr=-1"])
    _, problems = check_space(space)
    assert sorted(str(p) for p in problems) == [
        "--set train.lr=-1: train.lr: Input should be greater than 0",  # every assignment has it
        "line 4: model.layers[0].out: Input should be greater than 0 [when all high]",
    ]


def test_a_value_every_branch_of_a_union_refuses_is_one_problem(write):
    with pytest.raises(SpecError) as info:
        load_spec(write("spec.yaml", GOOD), ["model.layers.0.padding=sme", "data.normalize=foo", "data.augment=[foo]"])
    assert sorted(str(p).split(": ", 1)[1] for p in info.value.problems) == [
        "data.augment[0]: unknown type 'foo'; valid types: hflip, rotation, rotate90, random_crop, translate, "
        "random_erasing",
        "data.normalize: got 'foo', expected one of: auto, imagenet, none, or a mapping",
        "model.layers[0].padding: got 'sme', expected a whole number, or one of: same, valid; did you mean 'same'?",
    ]


def test_a_path_in_the_file_is_relative_to_it_and_a_set_path_to_the_working_directory(write, tmp_path, monkeypatch):
    (tmp_path / "specs").mkdir()
    spec_file = write("specs/spec.yaml", GOOD + "data: {dataset: image_folder, path: imgs}\n")
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert load_spec(spec_file).data.path == str(spec_file.parent / "imgs")
    assert load_spec(spec_file, ["data.path=imgs"]).data.path == str(tmp_path / "here" / "imgs")
    assert load_spec(spec_file, [f"data.path={tmp_path}/abs"]).data.path == str(tmp_path / "abs")


@pytest.mark.parametrize("train, backbone, says", [
    ({"lr_multipliers": {"head": 2.0}}, None, "train.lr_multipliers acts on the stages of model.backbone"),
    ({"unfreeze": {"after_epochs": 1}, "lr_multipliers": {"head": 2.0}}, None,
     "train.lr_multipliers and train.unfreeze act on the stages"),
    ({"epochs": 2, "unfreeze": {"after_epochs": 2}}, {"freeze": ["layer1"]},
     r"unfreeze.after_epochs \(2\) must be below epochs \(2\)"),
    ({"epochs": 3, "unfreeze": {"after_epochs": 1}}, {}, "model.backbone.freeze is empty: nothing is frozen"),
    ({"epochs": 3, "unfreeze": {"after_epochs": 1, "stages": ["layer2"]}}, {"freeze": ["stem", "layer1"]},
     r"train.unfreeze.stages \['layer2'\] are not in model.backbone.freeze \['stem', 'layer1'\]"),
])
def test_stage_training_settings_that_would_do_nothing_are_refused(train, backbone, says):
    model = ({"input": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "linear"}]} if backbone is None
             else {"input": [3, 32, 32], "backbone": {"name": "resnet18", **backbone}})
    with pytest.raises(SpecError, match=says):
        parse_spec({"model": model, "train": train})
    if backbone is not None and "stages" in train.get("unfreeze", {}):  # the same with the stage frozen is fine
        parse_spec({"model": {**model, "backbone": {"name": "resnet18", "freeze": ["layer2"]}}, "train": train})
