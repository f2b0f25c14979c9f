"""A file appears under its final name only when complete."""

import pytest

from nrf.atomic import atomic_output


def test_success_renames_into_place(tmp_path):
    path = tmp_path / "sub" / "out.nii.gz"
    with atomic_output(path) as tmp:
        assert tmp.name.endswith(".nii.gz")  # the suffix writers read formats from
        tmp.write_text("done")
        assert not path.exists()
    assert path.read_text() == "done"
    assert [p.name for p in path.parent.iterdir()] == ["out.nii.gz"]


def test_failure_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
