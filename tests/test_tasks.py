"""The task registry: names, answer spaces, parsing, labels in datasets, and tasks recorded by adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raysweep.cli import main
from raysweep.config import load_config
from raysweep.datasets import open_dataset, read_dataset
from raysweep.datasets.store import sha256_file
from raysweep.errors import ConfigError, UserError
from raysweep.tasks import (
    default_task,
    list_tasks,
    register,
    task_class,
    task_for,
    task_from_config,
    task_from_identity,
    task_from_params,
    task_of_manifest,
)
from raysweep.tasks.absolute_position import AbsolutePosition

REPO = Path(__file__).resolve().parents[1]


def test_the_registry_lists_tasks_and_names_the_closest_for_a_typo(capsys):
    assert "absolute_position" in list_tasks()
    with pytest.raises(UserError, match=r"Unknown task 'absolute_positon'. Did you mean 'absolute_position'\? Available: "):
        task_class("absolute_positon")
    with pytest.raises(ConfigError, match=r"^data.task: Unknown task 'absolut_position'. Did you mean 'absolute_position'"):
        load_config(None, ["data.task=absolut_position"])
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "absolute_position:" in out and "top left, top center" in out and "center_bias" in out
    assert main(["tasks", "nope"]) == 2


def test_a_task_name_registered_twice_is_an_error():
    class Other(AbsolutePosition):
        pass

    with pytest.raises(ValueError, match="registered twice"):
        register(Other)
    assert task_class("absolute_position") is AbsolutePosition


@pytest.mark.parametrize("side, grid, names", [
    (2, 8, ["top left", "top right", "bottom left", "bottom right"]),
    (3, 9, ["top left", "top center", "top right", "center left", "center", "center right", "bottom left", "bottom center", "bottom right"]),
    (4, 8, [f"row {r} column {c}" for r in range(1, 5) for c in range(1, 5)]),
])  # fmt: skip
def test_the_answer_grid_follows_the_config(side, grid, names):
    task = task_for(load_config(None, [f"data.grid_size={grid}", f"data.areas_per_side={side}"]).data)
    assert list(task.answer_names) == names and task.grid_side() == side
    assert task.slugs[0] == names[0].replace(" ", "_")
    assert [task.parse(n) for n in names] == list(range(side * side))  # every name parses to itself
    assert task.parse("somewhere") == -1


def test_each_grid_parses_free_text_its_own_way():
    two = task_from_config({"areas_per_side": 2})
    assert two.parse("The star is in the upper-left corner.") == 0 and two.parse("bottom-right") == 3
    assert two.parse("center") == -1  # a 2x2 grid has no centre
    four = task_from_config({"areas_per_side": 4})
    assert four.parse("Row 2, column 3.") == 6 and four.parse("row-4 column-4") == 15
    assert four.parse("row 1 column 1 or row 1 column 2") == -1  # two answers: no guess
    assert four.parse("row 2 column 3", "exact") == 6 and four.parse("row-2 column-3", "exact") == -1


def test_config_names_and_templates_are_checked_against_the_task():
    with pytest.raises(ConfigError, match=r"data.area_names: needs 4 names, got 2"):
        load_config(None, ["data.grid_size=8", "data.areas_per_side=2", "data.area_names=[a, b]"])
    with pytest.raises(ConfigError, match=r"data.template: must contain \{options\} for task absolute_position"):
        load_config(None, ["data.template='Where is the {ref}?'"])
    named = load_config(None, ["data.area_names=[nw, n, ne, w, c, e, sw, s, se]"]).data
    assert task_for(named).answer_names[0] == "nw" and task_for(named).parse("se") == 8


def test_tasks_resolve_from_manifests_params_and_identities():
    assert task_of_manifest({}) == default_task()  # sets written before data.task: the paper's task
    assert task_of_manifest({"config": {"areas_per_side": 2, "area_names": []}}).n_classes == 4
    params = {"data.task": "absolute_position", "data.areas_per_side": "2", "data.area_names": "[]", "model.family": "clip"}
    assert task_from_params(params) == task_from_config({"areas_per_side": 2})
    assert task_from_params({}) == default_task()
    assert task_from_identity(default_task().identity()) == default_task()
    assert task_from_identity(task_from_config({"areas_per_side": 2}).identity()).grid_side() == 2


def _drop_label(dataset: Path) -> None:
    """Rewrite a dataset as one written before ``label`` existed (manifest sizes updated to match)."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    for entry in manifest["files"]:
        part = dataset / entry["name"]
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["label", "ref_row", "ref_col"]), part)
        entry.update(bytes=part.stat().st_size, sha256=sha256_file(part))
    (dataset / "manifest.json").write_text(json.dumps(manifest))


def test_rows_carry_label_and_older_sets_get_it_from_their_answers(tmp_path):
    out = tmp_path / "set"
    assert main(["generate", str(REPO / "configs/data/civet_test.yaml"), "data.fraction=0.01", "--out", str(out), "--quiet"]) == 0
    table = read_dataset(out)
    task = open_dataset(out).task
    rows = table.to_pylist()
    assert all(r["label"] == task.answer_names.index(r["answer"]) == r["area"] for r in rows)
    assert all(r["ref_row"] is None and r["ref_col"] is None for r in rows)
    _drop_label(out)
    old = read_dataset(out, columns=["label", "area"])
    assert old.column_names == ["label", "area"] and old.column("label").to_pylist() == [r["label"] for r in rows]
    assert read_dataset(out).column("label").to_pylist() == [r["label"] for r in rows]


def test_a_label_outside_the_task_is_refused_when_the_set_is_opened(tmp_path):
    import pyarrow as pa

    out = tmp_path / "set"
    assert main(["generate", str(REPO / "configs/data/civet_test.yaml"), "data.fraction=0.01", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    part = out / manifest["files"][0]["name"]
    table = pq.read_table(part)
    at = table.schema.get_field_index("label")
    table = table.set_column(at, table.schema.field(at), pa.array([20] * table.num_rows, pa.int16()))
    pq.write_table(table, part)
    manifest["files"][0].update(bytes=part.stat().st_size, sha256=sha256_file(part))
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"column 'label' holds 20..20, outside the task's 0..8"):
        open_dataset(out)
