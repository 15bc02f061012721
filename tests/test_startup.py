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
