"""Pre-flight check that the dense table of a dataset fits in memory, before it is built.

``PerturbationData`` holds every cell as one dense float32 ``[N, G]`` table, whatever the file stores: a
sparse file of 1M cells x 30k genes is a few GB on disk and 120 GB dense. Building it without room ends in
a ``MemoryError`` halfway through or, on Linux, in the kernel's OOM killer (the process vanishes without a
message). ``check_dense_fits`` refuses such a load first, with the numbers and the ways out.
"""

from __future__ import annotations

from pathlib import Path

from distgen.errors import UsageError

GIB = 1024**3
_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


class TooLargeError(UsageError, ValueError):
    """Input whose in-memory form cannot fit in the memory available (exit code 2)."""


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _meminfo_available() -> int | None:
    try:
        lines = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def available_memory() -> int | None:
    """Bytes this process can still allocate: ``MemAvailable`` bounded by a cgroup (container) limit; None when unknown.

    Read from ``/proc/meminfo`` and the cgroup v2 (``memory.max - memory.current``) or v1 files; on systems without
    them (macOS, Windows) the answer is None and nothing is refused.
    """
    found = [m for m in (_meminfo_available(),) if m is not None]
    for limit, usage in ((_CGROUP_V2 / "memory.max", _CGROUP_V2 / "memory.current"),
                         (_CGROUP_V1 / "memory.limit_in_bytes", _CGROUP_V1 / "memory.usage_in_bytes")):
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < 1 << 60:  # v1 writes a huge number for no limit
            found.append(max(cap - used, 0))
    return min(found) if found else None


def dense_bytes(n_cells: int, n_genes: int, nnz: int | None = None) -> int:
    """Bytes of the dense float32 ``[n_cells, n_genes]`` table plus the sparse working copies made on the way (``nnz``
    stored values: the normalised copy and the processed AnnData's CSR, 8 bytes a value each)."""
    return 4 * n_cells * n_genes + (16 * nnz if nnz is not None else 0)


def check_dense_fits(n_cells: int, n_genes: int, nnz: int | None, what: str, of_genes: int | None = None) -> None:
    """Raise ``TooLargeError`` when ``dense_bytes`` exceeds ``available_memory()``; ``what`` names the input, ``of_genes``
    the genes of the file when ``n_genes`` of them were selected (``data.hvg``) before the table is built."""
    need, free = dense_bytes(n_cells, n_genes, nnz), available_memory()
    if free is None or need <= free:
        return
    if of_genes is None:
        size = f"{n_cells} cells x {n_genes} genes"
        fewer = ("Keep fewer genes (data.hvg: N selects the N most variable genes of the training cells on the sparse matrix, "
                 "before the table is built) or fewer genes in the file (adata[:, genes].copy().write_h5ad(...))")
    else:
        size = f"{n_cells} cells x {n_genes} genes (selected of the file's {of_genes} before the table is built)"
        fewer = "Select fewer genes (a smaller data.hvg, or in the file: adata[:, genes].copy().write_h5ad(...))"
    raise TooLargeError(
        f"{what}: {size} are a dense float32 table of {need / GIB:.1f} GiB with its working copies, "
        f"more than the {free / GIB:.1f} GiB of memory available; distgen holds a run's cells in memory as one dense table. "
        f"{fewer}, fewer cells (data.filter), or train from the file on disk with distgen.data.streaming.StreamBatches (docs/scale.md)"
    )
