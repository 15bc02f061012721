"""glibc's huge-page malloc tunable (training/huge_pages.py), the allocator launch.py re-executes
itself with (training/malloc.py), and their benchmark (benchmarks/malloc.py)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from training import huge_pages, malloc

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


MIMALLOC = Path("/lib/libmimalloc.so.3")
GLIBC_THP = dict(system="Linux", libc="glibc", thp="madvise")


def test_a_launch_preloads_mimalloc_with_huge_pages_and_keeps_the_users_choices():
    assert malloc.environment({}, **GLIBC_THP, library=MIMALLOC) == {
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", "LD_PRELOAD": str(MIMALLOC),
        "MIMALLOC_ALLOW_LARGE_OS_PAGES": "1"}
    mine = {"LD_PRELOAD": "/lib/libjemalloc.so.2", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert malloc.environment(mine, **GLIBC_THP, library=MIMALLOC) == {}
    options = {"MIMALLOC_ALLOW_LARGE_OS_PAGES": "0"}
    assert "MIMALLOC_ALLOW_LARGE_OS_PAGES" not in malloc.environment(
        options, **GLIBC_THP, library=MIMALLOC)


@pytest.mark.parametrize("env, system, library, expected", [
    ({"CONVJAX_MALLOC": "glibc"}, "Linux", MIMALLOC, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
    ({"CONVJAX_MALLOC": "System"}, "Linux", MIMALLOC, {}),
    ({}, "Linux", None, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),  # wheel not installed
    ({}, "Darwin", MIMALLOC, {}),
])
def test_mimalloc_only_where_chosen_installed_and_preloadable(env, system, library, expected):
    libc = "glibc" if system == "Linux" else ""
    assert malloc.environment(env, system, libc, "madvise", library) == expected


def test_an_unknown_allocator_is_one_line_and_exit_status_2():
    env = {**os.environ, "CONVJAX_MALLOC": "tcmalloc"}
    env.pop("LD_PRELOAD", None)
    proc = subprocess.run([sys.executable, "launch.py", "models"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "CONVJAX_MALLOC='tcmalloc'" in proc.stderr and "mimalloc" in proc.stderr


@pytest.mark.skipif(platform.system() != "Linux" or malloc.mimalloc_library() is None,
                    reason="mimalloc is preloaded on Linux, from the cmeel-mimalloc wheel")
def test_a_launch_runs_its_command_once_on_mimalloc():
    code = ("import launch, sys; print('start', flush=True); "
            "launch.malloc.reexec(); print(launch.malloc.describe()); "
            "print(any('libmimalloc' in line for line in open('/proc/self/maps')))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "GLIBC_TUNABLES", malloc.ENV_VAR) and "MIMALLOC" not in k}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert out[0] == out[1] == "start" and len(out) == 4
    assert out[2].startswith("mimalloc (LD_PRELOAD libmimalloc.so") and out[3] == "True"


def test_the_benchmarks_picture_is_drawn_from_its_saved_results(tmp_path):
    from benchmarks import malloc as bench

    results = {"thp_mode": "madvise", "step_ms": {
        "4k": {"lenet5 convjax[auto]": [9.1, 8.9]}, "huge": {"lenet5 convjax[auto]": [8.4]},
        "mimalloc": {"lenet5 convjax[auto]": [8.2, 8.3]}}}
    out = tmp_path / "huge.png"
    bench.plot(results, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_redrawing_from_a_missing_or_foreign_json_is_one_line_and_status_2(tmp_path, capsys):
    from benchmarks import malloc as bench

    foreign = tmp_path / "other.json"
    foreign.write_text('{"models": []}')
    for path in (tmp_path / "missing.json", foreign):
        assert bench.main(["--from-json", str(path), "--png", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --from-json") and "\n" not in err
    assert not (tmp_path / "x.png").exists()
