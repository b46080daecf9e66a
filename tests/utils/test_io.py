"""All-or-nothing writes, the cache folder and appended lines (tf_asgan.utils.io)."""

import dataclasses
import json
import os

import numpy as np
import pytest

from tf_asgan import errors
from tf_asgan.utils import io, options


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_the_cache_root_follows_the_environment(monkeypatch):
    monkeypatch.setenv("TF_ASGAN_CACHE", "/somewhere/cache")
    assert io.cache_root() == "/somewhere/cache"
    monkeypatch.setenv("TF_ASGAN_CACHE", "")
    assert io.cache_root() == os.path.join(os.path.expanduser("~"), ".cache", "tf_asgan")


def test_text_and_json_are_written_whole_with_no_temporary_file_left(tmp_path):
    path = tmp_path / "note.txt"
    io.atomic_write_text(str(path), "first")
    io.atomic_write_text(str(path), "second\n")
    assert path.read_text() == "second\n"
    record = tmp_path / "record.json"
    io.atomic_write_json(str(record), {"b": 1, "a": [1.5, None]}, indent=2, sort_keys=True)
    assert record.read_text() == json.dumps({"a": [1.5, None], "b": 1}, indent=2,
                                            sort_keys=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt", "record.json"]


def test_a_path_writer_sees_the_same_suffix(tmp_path):
    target = tmp_path / "stats.v2.npz"
    with io.atomic_path(str(target)) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".v2.npz")
        assert not os.path.exists(tmp)
        np.savez(tmp, x=np.arange(3))
    with np.load(target) as f:
        assert f["x"].tolist() == [0, 1, 2]
    with io.atomic_path(str(tmp_path / "grid.jpg"), suffix=".png") as tmp:
        assert tmp.endswith(".png")
        _write(tmp, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.jpg", "stats.v2.npz"]


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "weights.weights.h5"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with io.atomic_path(str(path)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    with pytest.raises(TypeError):  # not JSON: nothing is replaced
        io.atomic_write_json(str(path), {"x": object()})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.weights.h5"]


def test_a_folder_is_swapped_in_only_when_complete(tmp_path):
    target = tmp_path / "export"
    with io.atomic_directory(str(target), prefix=".export-") as tmp:
        assert os.path.basename(tmp).startswith(".export-") and not target.exists()
        _write(os.path.join(tmp, "a.txt"), "one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(ValueError):
        with io.atomic_directory(str(target)) as tmp:
            _write(os.path.join(tmp, "b.txt"), "two")
            raise ValueError("failed half-way")
    assert sorted(os.listdir(target)) == ["a.txt"]
    with io.atomic_directory(str(target)) as tmp:
        _write(os.path.join(tmp, "b.txt"), "two")
    assert sorted(os.listdir(target)) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_appended_lines_stand_on_their_own_after_a_torn_write(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    io.append_line(path, "one")
    with open(path, "a") as f:
        f.write('{"half')  # a writer killed mid-line
    io.append_line(path, "two")
    with open(path) as f:
        assert f.read().splitlines() == ["one", '{"half', "two"]


def test_a_swapped_in_folder_gets_the_usual_permissions(tmp_path):
    # mkdtemp makes owner-only folders; an export must be as readable as os.makedirs'.
    umask = os.umask(0o022)
    try:
        with io.atomic_directory(str(tmp_path / "export")) as tmp:
            open(os.path.join(tmp, "f"), "w").close()
        assert os.stat(tmp_path / "export").st_mode & 0o777 == 0o755
    finally:
        os.umask(umask)


def test_an_option_argument_is_read_one_way_for_every_option():
    @dataclasses.dataclass(frozen=True)
    class Opt:
        kind: str = "a"
        weight: float = 1.0

        def validate(self):
            if self.weight < 0:
                raise errors.InputError("weight must be >= 0")
            return self

    def read(value):
        return options.as_option(value, Opt, what="test", argument="opt", public="t.Opt",
                                 name_field="kind", names=("a", "b"), off="none")

    assert read(None) is None and read("none") is None
    assert read("b") == Opt(kind="b") and read({"weight": 2.0}) == Opt(weight=2.0)
    assert read(Opt(kind="b")) == Opt(kind="b")
    with pytest.raises(errors.InputError, match=r"Unknown test option\(s\) \['wieght'\]; "
                       r"the options are \['kind', 'weight'\]"):
        read({"wieght": 2.0})
    with pytest.raises(errors.InputError, match=r"opt must be None, one of \['a', 'b'\], a dict "
                       r"or a t.Opt, got int"):
        read(3)
    with pytest.raises(errors.InputError, match="weight must be >= 0"):
        read({"weight": -1.0})
