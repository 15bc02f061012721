"""launch.py's re-execution with glibc's huge-page malloc tunable (training/huge_pages.py)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from training import huge_pages

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env, expected", [
    ({}, "glibc.malloc.hugetlb=1"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
     "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, None),  # the user's choice stands
    ({"CONVJAX_HUGE_PAGES": "off"}, None),
    ({"CONVJAX_HUGE_PAGES": "False"}, None),
])
def test_the_tunable_is_added_once_and_never_over_the_users_choice(env, expected):
    assert huge_pages.tunables(env, "madvise", "glibc") == expected


@pytest.mark.parametrize("mode, libc", [("never", "glibc"), (None, "glibc"), ("always", "")])
def test_no_reexecution_where_huge_pages_cannot_act(mode, libc):
    assert huge_pages.tunables({}, mode, libc) is None
    assert huge_pages.tunables({}, "always", "glibc") == "glibc.malloc.hugetlb=1"


def test_the_kernels_mode_is_the_bracketed_word(tmp_path, monkeypatch):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    monkeypatch.setattr(huge_pages, "_THP_MODE", path)
    assert huge_pages.thp_mode() == "madvise"
    monkeypatch.setattr(huge_pages, "_THP_MODE", tmp_path / "missing")
    assert huge_pages.thp_mode() is None


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the tunable is glibc's")
def test_reexec_runs_the_same_command_once_more_with_the_tunable_set(tmp_path):
    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    code = ("import os; from pathlib import Path; from training import huge_pages; "
            f"huge_pages._THP_MODE = Path({str(mode)!r}); print('start', flush=True); "
            "huge_pages.reexec(); print(os.environ['GLIBC_TUNABLES'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", huge_pages.ENV_VAR)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["start", "start", "glibc.malloc.hugetlb=1"]


def test_the_benchmarks_picture_is_drawn_from_its_saved_results(tmp_path):
    from benchmarks import huge_pages as bench

    results = {"thp_mode": "madvise", "step_ms": {
        "4k": {"lenet5 convjax[auto]": [9.1, 8.9]}, "huge": {"lenet5 convjax[auto]": [8.4]}}}
    out = tmp_path / "huge.png"
    bench.plot(results, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_redrawing_from_a_missing_or_foreign_json_is_one_line_and_status_2(tmp_path, capsys):
    from benchmarks import huge_pages as bench

    foreign = tmp_path / "other.json"
    foreign.write_text('{"models": []}')
    for path in (tmp_path / "missing.json", foreign):
        assert bench.main(["--from-json", str(path), "--png", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --from-json") and "\n" not in err
    assert not (tmp_path / "x.png").exists()
