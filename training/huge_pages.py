"""Transparent huge pages for the host memory XLA's CPU runtime allocates: glibc's malloc told to
back its large blocks with 2 MiB pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which makes
malloc madvise them MADV_HUGEPAGE), set by launch.py's re-execution (training/malloc.py, which
now also preloads mimalloc; this tunable still serves what glibc allocates, and everything
under `CONVJAX_MALLOC=glibc`).

Why: XLA's CPU runtime takes each step's temporaries from malloc, which maps them fresh every
step and unmaps them after (ResNet-20 at b128: ~230 MB a step, 58,000 minor page faults on 4 KiB
pages), and every strided access to those buffers (patch slices, transposes) misses the TLB once
per 4 KiB. With 2 MiB pages, measured on the 2-core CPU (benchmarks/malloc.py, `--settings
4k,huge`: each setting in its own processes, alternating; the median over processes of the
step's median; benchmarks/results/huge_pages_cpu_2core.json with the PyTorch twin in the same
processes, huge_pages_alone_cpu_2core.json without): ResNet-20 b128 371 -> 226 ms (4 KiB pages:
280-399 ms from process to process; 2 MiB: 219-244), ResNet-18 64x64 b32 172 -> 165 (alone: 168
-> 143), LeNet-5 b128 within its noise (7.9-10.6 ms either way); PyTorch's steps in the same
processes 0.93-1.03x. Minor page faults per process: 2.1-2.3 M -> 0.23-0.26 M. Nothing else
offers this: XLA has no option for its host allocator, and THP's system-wide `always` mode is
the machine owner's call.

The pages still come fresh each step: a worker thread's malloc arena cannot hold a block over
64 MiB (ResNet-20's temporaries are one 201 MB block), so glibc maps it anew every step, even
with `glibc.malloc.mmap_max=0`, zeroing each 2 MiB page it faults in (167-218 faults a step).
Adding `glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824:glibc.malloc.arena_max=1`
(one arena: the block is reused, 0-5 faults a step) was measured but is not the default: convjax
alone, ResNet-20 174-192 -> 160-166 ms, ResNet-18 158-163 -> 146-150, but LeNet-5 6.7-7.6 ->
7.8-8.4 (its Eigen dots slow down when every thread shares one arena); the harness with it in
both processes (benchmarks/results/train_step_cpu_2core_malloc_one_arena.json) gave ratios
lenet5 1.05, resnet20_cifar 1.00, resnet18 0.85, PyTorch's steps faster too. To use it, put
`glibc.malloc.hugetlb=1` and those three in $GLIBC_TUNABLES, with `CONVJAX_MALLOC=glibc`:
launch.py leaves that as it is. The preloaded mimalloc (training/malloc.py) reuses the block
without slowing LeNet-5.

glibc reads its tunables once, when the process starts, hence the exec. It applies
only where it can act: Linux with glibc and THP in `madvise` or `always` mode. A
`glibc.malloc.hugetlb` already in $GLIBC_TUNABLES is left as it is; `CONVJAX_HUGE_PAGES=off`
(also 0, false, no) leaves it out.
"""

from __future__ import annotations

from pathlib import Path

ENV_VAR = "CONVJAX_HUGE_PAGES"
TUNABLE = "glibc.malloc.hugetlb"
_OFF = {"off", "0", "false", "no", "none"}
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_mode() -> str | None:
    """The kernel's transparent-huge-page mode (always, madvise, never), or None if unknown."""
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    chosen = [word for word in text.split() if word.startswith("[")]
    return chosen[0].strip("[]") if chosen else None


def tunables(env: dict[str, str], mode: str | None, libc: str) -> str | None:
    """The $GLIBC_TUNABLES a re-executed launch should get, or None to launch as is: when
    turned off, not glibc, THP unavailable, or the tunable already chosen."""
    if env.get(ENV_VAR, "").strip().lower() in _OFF or libc != "glibc":
        return None
    if mode not in ("always", "madvise"):
        return None
    current = env.get("GLIBC_TUNABLES", "")
    if TUNABLE in current:
        return None
    return f"{current}:{TUNABLE}=1" if current else f"{TUNABLE}=1"

