"""The process's malloc: `launch.py` re-executes itself once, before anything is imported, with
mimalloc preloaded (`LD_PRELOAD`, the library of the `cmeel-mimalloc` wheel) and glibc's
huge-page tunable set (training/huge_pages.py), where each can act.

Why mimalloc: XLA's CPU runtime takes each step's temporaries from malloc as one block (201 MB
for ResNet-20 at b128). glibc serves a block over 64 MiB asked for by a worker thread with a
fresh mmap every step and unmaps it after (its thread arenas cannot hold one), so every step
faults in and zeroes its temporaries again: 167-218 faults a step on 2 MiB pages, 49,000 on
4 KiB ones. mimalloc keeps freed memory for the next request. Measured on the 2-core CPU,
convjax's step alone, one process per setting, three of each, alternating
(`python -m benchmarks.malloc --settings huge,mimalloc --runs 3`,
benchmarks/results/malloc_cpu_2core.json, docs/malloc_cpu_2core.png; medians over processes,
glibc with 2 MiB pages -> mimalloc): ResNet-20 b128 164.3 -> 150.4 ms (0.92), ResNet-18 64x64
b32 147.3 -> 133.1 (0.90), LeNet-5 b128 6.2 -> 6.3 (1.00). PyTorch's steps gain under it too
(ResNet-20, torch.compile channels-last, 152.7-157.2 -> 146.4-146.8 ms), so the benchmark's
peer runs on it as well (benchmarks/peer_process.py). glibc with one arena
(`glibc.malloc.arena_max=1`) also reuses the block but slows LeNet-5 by 15%
(training/huge_pages.py); Debian's jemalloc, preloaded, kept faulting (ResNet-20 188-190
ms; 155-162 with its THP options) and Debian's tcmalloc matched mimalloc (143-151 ms), but
neither is a wheel: only mimalloc installs from the project's own files. No XLA or JAX option
chooses the CPU allocator, so the preload is the one way in.

The library is loaded at exec, hence the re-execution (one interpreter start-up, counted in a
run's `startup_s`). `$CONVJAX_MALLOC` chooses: `mimalloc` (the default where the wheel is
installed, on Linux), `glibc` (glibc's malloc with huge pages only), `system` (neither: no
re-execution). A `$LD_PRELOAD` already set is the user's choice and is left as it is, and so
is any `$MIMALLOC_*` option; child processes (data workers, a benchmark's PyTorch peer)
inherit the setting.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path

from training import huge_pages

ENV_VAR = "CONVJAX_MALLOC"
CHOICES = ("mimalloc", "glibc", "system")
# Large OS pages for mimalloc's own arenas: 2 MiB pages under THP's madvise mode, as
# glibc.malloc.hugetlb=1 gives glibc's (measured in the file above)
MIMALLOC_OPTIONS = {"MIMALLOC_ALLOW_LARGE_OS_PAGES": "1"}


def choice(env: dict[str, str]) -> str:
    """$CONVJAX_MALLOC, checked: one of CHOICES (unset or empty: mimalloc)."""
    name = env.get(ENV_VAR, "").strip().lower() or "mimalloc"
    if name not in CHOICES:
        raise ValueError(f"{ENV_VAR}={name!r}; choose one of {', '.join(CHOICES)}")
    return name


def mimalloc_library() -> Path | None:
    """The shared mimalloc of the installed `cmeel-mimalloc` wheel, or None."""
    try:
        dist = importlib.metadata.distribution("cmeel-mimalloc")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.startswith("libmimalloc.so."):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    return None


def environment(env: dict[str, str], system: str, libc: str, thp: str | None,
                library: Path | None) -> dict[str, str]:
    """The variables a re-executed launch should get on top of `env` (empty: launch as is)."""
    name = choice(env)
    if name == "system":
        return {}
    out = {}
    tunables = huge_pages.tunables(env, thp, libc)
    if tunables is not None:
        out["GLIBC_TUNABLES"] = tunables
    if name == "mimalloc" and system == "Linux" and library is not None \
            and not env.get("LD_PRELOAD"):
        out["LD_PRELOAD"] = str(library)
        out.update({k: v for k, v in MIMALLOC_OPTIONS.items() if k not in env})
    return out


def reexec() -> None:
    """Replaces this process by the same command with `environment`'s variables set, where
    there are any; returns only when there are none (as in the re-executed process)."""
    try:
        extra = environment(dict(os.environ), platform.system(), platform.libc_ver()[0],
                            huge_pages.thp_mode(), mimalloc_library())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if not extra:
        return
    os.environ.update(extra)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def describe() -> str:
    """The allocator this process runs on, for a benchmark's record."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "mimalloc" in preload:
        return f"mimalloc (LD_PRELOAD {Path(preload).name})"
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return f"glibc ({tunables})" if tunables else "glibc"
