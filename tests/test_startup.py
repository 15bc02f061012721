"""A launch's imports run without garbage collection, then are frozen; a caller's process is
left as it is."""

import gc
import subprocess
import sys
from pathlib import Path

from training import startup

ROOT = Path(__file__).resolve().parent.parent


def test_in_a_callers_process_collection_is_left_alone():
    frozen = gc.get_freeze_count()
    with startup.imports_without_collection():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_in_its_own_process_imports_are_frozen_and_collection_resumes():
    code = """
import gc
from training import startup
startup.mark_own_process()
with startup.imports_without_collection():
    during = gc.isenabled()
    import json, email.parser  # objects the freeze must keep
print(during, gc.isenabled(), gc.get_freeze_count() > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "True", "True"]


def test_launch_run_as_a_script_marks_its_own_process():
    code = """
import runpy, sys
from training import startup
sys.argv = ["launch.py", "--help"]
try:
    runpy.run_path("launch.py", run_name="__main__")
except SystemExit:
    pass
print(startup._own_process)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[-1] == "True"


def test_the_bytecode_hint_names_the_fix_only_when_python_cannot_write_it(monkeypatch, tmp_path):
    import importlib.machinery

    def fake_spec(cached):
        spec = importlib.machinery.ModuleSpec("jax", None, origin=str(tmp_path / "jax.py"))
        spec.cached = str(cached)
        return lambda name: spec

    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(startup.importlib.util, "find_spec", fake_spec(tmp_path / "jax.pyc"))
    assert "uv sync --locked --compile-bytecode" in startup.bytecode_hint()
    (tmp_path / "jax.pyc").write_bytes(b"")
    assert startup.bytecode_hint() is None           # the environment has its bytecode
    (tmp_path / "jax.pyc").unlink()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert startup.bytecode_hint() is None           # Python writes it at the first import
