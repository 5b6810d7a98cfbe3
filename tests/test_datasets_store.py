"""Dataset folders: nothing deleted that raysweep did not write, and datasets validated when opened.

Inputs issue, class 1 (deleting what raysweep did not write), class 3 (datasets trusted without
checking) and class 9 (outputs that cannot be written, found before the work).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysweep.cli import main
from raysweep.datasets import dataset_identity, is_raysweep_dataset, open_dataset, read_dataset
from raysweep.datasets.store import DatasetWriter
from raysweep.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TEST_CFG = str(REPO / "configs" / "data" / "civet_test.yaml")
SMALL = [TEST_CFG, "data.fraction=0.01", "--quiet", "--rows-per-part", "10"]  # 36 scenes in 4 parts


def _generate(out, *extra) -> int:
    return main(["generate", *SMALL, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sets") / "small"
    assert _generate(out) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _user_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- class 1: never delete what raysweep did not write -----------------------------------------------


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_non_empty_folder_that_is_not_a_dataset_is_refused_and_kept(tmp_path, capsys, overwrite):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _user_files(out)
    assert _generate(out, *overwrite) == 2
    err = capsys.readouterr().err
    assert "not a raysweep dataset" in err and "never deletes" in err and len(err.strip().splitlines()) == 1
    assert _user_files(out) == before
    assert not list(tmp_path.glob(".mine.partial-*"))


def test_a_folder_with_a_foreign_manifest_json_is_not_a_dataset(tmp_path, capsys):
    out = tmp_path / "web"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "my web app", "icons": []}))
    assert _generate(out, "--overwrite") == 2
    assert "not a raysweep dataset" in capsys.readouterr().err
    assert json.loads((out / "manifest.json").read_text())["name"] == "my web app"


def test_out_dot_and_parents_of_the_working_directory_are_refused(tmp_path, capsys, monkeypatch):
    work = tmp_path / "project"
    work.mkdir()
    (work / "keep.py").write_text("print('mine')")
    monkeypatch.chdir(work)
    for out in (".", "..", str(tmp_path)):
        assert main(["generate", *SMALL, "--out", out, "--overwrite"]) == 2
        assert "working directory" in capsys.readouterr().err
    assert (work / "keep.py").read_text() == "print('mine')"


def test_out_that_is_a_file_or_a_link_is_refused(tmp_path, capsys, small_set):
    (tmp_path / "f").write_text("x")
    assert _generate(tmp_path / "f", "--overwrite") == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "link").symlink_to(small_set)
    assert _generate(tmp_path / "link", "--overwrite") == 2
    assert "symbolic link" in capsys.readouterr().err
    assert open_dataset(small_set).rows == 36 and (tmp_path / "f").read_text() == "x"


def test_out_in_folders_that_do_not_exist_yet(tmp_path):
    assert _generate(tmp_path / "a" / "b" / "set") == 0
    assert open_dataset(tmp_path / "a" / "b" / "set").rows == 36


def test_an_empty_folder_is_filled_and_a_dataset_is_replaced_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert _generate(out) == 0
    assert open_dataset(out).rows == 36
    assert _generate(out) == 2
    assert "--overwrite" in capsys.readouterr().err
    (out / "eval").mkdir()  # what `raysweep eval` writes into a dataset folder is raysweep's too
    assert main(["generate", TEST_CFG, "data.fraction=0.02", "--quiet", "--out", str(out), "--overwrite"]) == 0
    assert open_dataset(out).rows == 81 and not (out / "eval").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no staging or replaced folder left


def test_coco_builder_refuses_a_foreign_folder_too(tmp_path, capsys, tinycoco):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    args = ["coco", "--annotations", str(tinycoco / "annotations" / "instances_val2017.json"),
            "--images", str(tinycoco / "images" / "val2017"), "--out", str(out), "--quiet", "--overwrite"]  # fmt: skip
    assert main(args) == 2
    assert "not a raysweep dataset" in capsys.readouterr().err
    assert (out / "holiday.jpg").read_bytes() == b"jpeg"


def _partial_with_owner(parent: Path, name: str, pid: int, host: str | None = None) -> Path:
    import socket

    partial = parent / f".{name}.partial-deadbeef"
    partial.mkdir()
    (partial / "part-00000.parquet").write_bytes(b"half")
    (partial / ".raysweep-partial").write_text(json.dumps({"pid": pid, "host": host or socket.gethostname()}))
    return partial


def test_a_dead_builds_partial_folder_is_removed_and_reported(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = _partial_with_owner(tmp_path, "set", dead.pid)
    foreign = tmp_path / ".set.partial-notours"  # looks like ours by name only: left alone
    foreign.mkdir()
    (foreign / "x.txt").write_text("keep")
    assert _generate(tmp_path / "set") == 0
    err = capsys.readouterr().err
    assert f"removed {partial}" in err and "interrupted build" in err
    assert not partial.exists() and (foreign / "x.txt").read_text() == "keep"


def test_a_live_builds_partial_folder_is_not_touched(tmp_path, capsys):
    partial = _partial_with_owner(tmp_path, "set", os.getpid())
    assert _generate(tmp_path / "set") == 2
    assert "another raysweep build" in capsys.readouterr().err
    assert (partial / "part-00000.parquet").read_bytes() == b"half"


def test_kill_9_during_a_build_leaves_only_a_hidden_partial_that_the_next_run_removes(tmp_path):
    out = tmp_path / "big"
    cmd = [sys.executable, "-m", "raysweep.cli", "generate", TEST_CFG, "--quiet", "--rows-per-part", "200", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".big.partial-*/part-00000.parquet")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partials = list(tmp_path.glob(".big.partial-*"))
    assert len(partials) == 1 and not out.exists()
    again = subprocess.run([*cmd[:5], "data.fraction=0.01", *cmd[5:]], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"removed {partials[0]}" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"] and open_dataset(out).rows == 36


def test_writer_exception_removes_its_staging_and_keeps_the_old_dataset(tmp_path, small_set):
    out = _copy(small_set, tmp_path / "set")
    with pytest.raises(RuntimeError):
        with DatasetWriter(out, overwrite=True) as writer:
            writer.write_part(0, pa.table({"x": [1]}))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"] and open_dataset(out).rows == 36


# -- class 3: datasets validated when opened ---------------------------------------------------------


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _set_manifest(path: Path, manifest: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(manifest))


def _rewrite_part(part: Path, table: pa.Table, manifest_dir: Path) -> None:
    """Replace a part and make the manifest agree on rows and bytes, so only the content is wrong."""
    pq.write_table(table, part)
    manifest = _manifest(manifest_dir)
    for f in manifest["files"]:
        if f["name"] == part.name:
            f["rows"], f["bytes"] = table.num_rows, part.stat().st_size
    manifest["rows"] = sum(f["rows"] for f in manifest["files"])
    _set_manifest(manifest_dir, manifest)


def _expect(path: Path, *needles: str) -> None:
    with pytest.raises(UserError) as info:
        open_dataset(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    for needle in needles:
        assert needle in message, message


def test_a_valid_dataset_opens(small_set):
    ds = open_dataset(small_set)
    assert ds.rows == 36 and [p.name for p in ds.parts] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert read_dataset(small_set).num_rows == 36 and is_raysweep_dataset(small_set)


def test_manifest_row_count_that_disagrees_with_the_parts(tmp_path, small_set):
    ds = _copy(small_set, tmp_path / "d")
    manifest = _manifest(ds)
    manifest["rows"] = 40
    _set_manifest(ds, manifest)
    _expect(ds, "36 rows", "says 40")


def test_a_stray_part_from_another_dataset(tmp_path, small_set):
    ds = _copy(small_set, tmp_path / "d")
    shutil.copy(small_set / "part-00001.parquet", ds / "part-00007.parquet")
    _expect(ds, "part-00007.parquet", "not listed")


def test_a_part_swapped_for_another_datasets_part_of_the_same_name(tmp_path, small_set):
    other = tmp_path / "other"
    assert main(["generate", TEST_CFG, "data.fraction=0.01", "data.seed=7", "data.distractors=3", "data.variants=1",
                 "--quiet", "--rows-per-part", "10", "--out", str(other)]) == 0  # fmt: skip
    ds = _copy(small_set, tmp_path / "d")
    shutil.copy(other / "part-00001.parquet", ds / "part-00001.parquet")
    _expect(ds, "part-00001.parquet", "bytes")


def test_a_missing_part(tmp_path, small_set):
    ds = _copy(small_set, tmp_path / "d")
    (ds / "part-00002.parquet").unlink()
    _expect(ds, "part-00002.parquet", "missing")


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_a_truncated_or_empty_part_is_named(tmp_path, small_set, damage):
    ds = _copy(small_set, tmp_path / "d")
    part = ds / "part-00003.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2] if damage == "truncate" else b"")
    _expect(ds, "part-00003.parquet", "bytes")
    manifest = _manifest(ds)  # an older manifest without per-file sizes: Parquet itself must complain
    del manifest["files"]
    _set_manifest(ds, manifest)
    _expect(ds, "part-00003.parquet", "not a readable Parquet file")


def test_area_stored_as_strings(tmp_path, small_set):
    ds = _copy(small_set, tmp_path / "d")
    part = ds / "part-00000.parquet"
    table = pq.read_table(part)
    idx = table.schema.get_field_index("area")
    table = table.set_column(idx, "area", pa.array([str(a) for a in table.column("area").to_pylist()]))
    _rewrite_part(part, table, ds)
    _expect(ds, "part-00000.parquet", "'area'", "string", "int8")


@pytest.mark.parametrize("column", ["answer", "image", "area"])
def test_a_missing_column(tmp_path, small_set, column):
    ds = _copy(small_set, tmp_path / "d")
    part = ds / "part-00001.parquet"
    _rewrite_part(part, pq.read_table(part).drop_columns([column]), ds)
    _expect(ds, "part-00001.parquet", f"no column {column!r}")


def test_empty_values_and_areas_outside_the_grid(tmp_path, small_set):
    ds = _copy(small_set, tmp_path / "d")
    part = ds / "part-00002.parquet"
    table = pq.read_table(part)
    prompts = table.column("prompt").to_pylist()
    prompts[3] = None
    _rewrite_part(part, table.set_column(table.schema.get_field_index("prompt"), "prompt", pa.array(prompts)), ds)
    _expect(ds, "part-00002.parquet", "'prompt'", "empty")
    areas = table.column("area").to_pylist()
    areas[0] = 9
    bad = table.set_column(table.schema.get_field_index("area"), "area", pa.array(areas, pa.int8()))
    _rewrite_part(part, bad, ds)
    _expect(ds, "part-00002.parquet", "outside 0..8")


def test_rows_a_family_refuses_are_screened_out_when_read(tmp_path, small_set, capsys):
    """An older set with a 1 x 300 photo: Qwen2-VL's processor refuses it, so no family gets the row."""
    ds = _copy(small_set, tmp_path / "d")
    part = ds / "part-00000.parquet"
    table = pq.read_table(part)
    widths, heights = table.column("width").to_pylist(), table.column("height").to_pylist()
    widths[2], heights[2] = 300, 1
    widths[3], heights[3] = 200, 1  # exactly the limit: kept
    table = table.set_column(table.schema.get_field_index("width"), "width", pa.array(widths, pa.int32()))
    table = table.set_column(table.schema.get_field_index("height"), "height", pa.array(heights, pa.int32()))
    _rewrite_part(part, table, ds)
    rows = read_dataset(ds, columns=["scene_id", "answer"])
    assert rows.num_rows == 35 and rows.column_names == ["scene_id", "answer"]
    assert table.column("scene_id")[2].as_py() not in rows.column("scene_id").to_pylist()
    assert "left out 1 of 36 rows" in capsys.readouterr().err


def test_commands_that_read_datasets_refuse_a_bad_one_in_one_line(tmp_path, small_set, capsys):
    ds = _copy(small_set, tmp_path / "d")
    shutil.copy(small_set / "part-00001.parquet", ds / "part-00009.parquet")
    for argv in (["audit", str(ds)], ["show", str(ds), "--n", "2"],
                 ["eval", str(REPO / "configs/models/tiny-llava-next.yaml"), "--data", str(ds)]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "part-00009.parquet" in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_dataset_identity_follows_content_not_place_or_time(tmp_path, small_set):
    same = tmp_path / "same"
    assert main(["generate", *SMALL, "--workers", "2", "--out", str(same)]) == 0
    other = tmp_path / "other"
    assert main(["generate", *SMALL, "data.seed=1", "--out", str(other)]) == 0
    assert dataset_identity(same) == dataset_identity(small_set) != dataset_identity(other)
    legacy = _copy(small_set, tmp_path / "legacy")  # no per-file hashes: computed from the files
    manifest = _manifest(legacy)
    del manifest["files"]
    _set_manifest(legacy, manifest)
    assert dataset_identity(legacy) == dataset_identity(small_set)


# -- class 9: outputs checked before the work ----------------------------------------------------------


def test_eval_show_audit_and_generate_refuse_outputs_under_a_file_before_working(tmp_path, small_set, capsys, monkeypatch):
    import raysweep.models

    def no_work(*args, **kwargs):
        raise AssertionError("a model was built before the output was checked")

    monkeypatch.setattr(raysweep.models, "get_family", no_work)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ["eval", str(REPO / "configs/models/tiny-llava-next.yaml"), "--data", str(small_set), "--out", str(blocker / "r")],
        ["show", str(small_set), "--out", str(blocker / "sheet.png")],
        ["show", str(small_set), "--out", str(tmp_path)],
        ["audit", str(small_set), "--json", str(blocker / "a.json")],
        ["generate", *SMALL, "--out", str(blocker / "set")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and ("is a file" in err or "is a folder" in err), (argv, err)
    assert not (small_set / "eval").exists() and blocker.read_text() == "x"


def _run_without_override(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI so that permission bits stop it: as root, without the capability that ignores them."""
    prefix = []
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", "--bounding-set", drop, "--inh-caps", drop, "--"]
    code = "import sys; from raysweep.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([*prefix, sys.executable, "-c", code, *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_read_only_folders_fail_before_the_work(tmp_path, small_set):
    data = _copy(small_set, tmp_path / "data")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    cases = [
        ["eval", str(REPO / "configs/models/tiny-llava-next.yaml"), "--data", str(data), "--out", str(readonly / "r")],
        ["eval", str(REPO / "configs/models/tiny-llava-next.yaml"), "--data", str(data)],  # default: DATA/eval, read-only too
        ["generate", *SMALL, "--out", str(readonly / "set")],
        ["audit", str(data), "--json", str(readonly / "a.json")],
    ]
    readonly.chmod(0o555)
    data.chmod(0o555)
    try:
        for argv in cases:
            result = _run_without_override(argv, REPO)
            assert result.returncode == 2, (argv, result.stderr)
            assert "cannot write" in result.stderr and "no permission" in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    finally:
        readonly.chmod(0o755)
        data.chmod(0o755)
    assert sorted(p.name for p in readonly.iterdir()) == [] and not (data / "eval").exists()
