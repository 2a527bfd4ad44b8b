"""What both mappings share: the report of an import and a key-by-key builder that checks itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from distgen.wording import counted, first_of


class OfficialCheckpointError(ValueError):
    """An official checkpoint that cannot be mapped (wrong kind, unsupported option, shape mismatch)."""


@dataclass
class ImportReport:
    """What an import did: sizes read from the checkpoint, parameters dropped, notes for the user."""

    source: str
    sizes: dict[str, Any] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  #: official key -> why it was not used
    kept: dict[str, str] = field(default_factory=dict)  #: distgen key -> why it keeps its own value
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "sizes": self.sizes, "dropped": self.dropped, "kept": self.kept, "notes": self.notes}


class StateBuilder:
    """Fills distgen keys from official tensors; refuses unknown official keys and unfilled distgen keys."""

    def __init__(self, official: Mapping[str, Tensor], target: Mapping[str, Tensor], report: ImportReport) -> None:
        self.src = dict(official)
        self.target = target
        self.out: dict[str, Tensor] = {}
        self.used: set[str] = set()
        self.report = report

    def get(self, key: str) -> Tensor:
        if key not in self.src:
            raise OfficialCheckpointError(f"{self.report.source}: the official state dict has no {key!r}; is it a checkpoint of this model?")
        self.used.add(key)
        return self.src[key]

    def has(self, key: str) -> bool:
        return key in self.src

    def put(self, key: str, value: Tensor) -> None:
        if key not in self.target:
            raise OfficialCheckpointError(f"internal mapping error: distgen model has no parameter {key!r}")
        want = tuple(self.target[key].shape)
        if tuple(value.shape) != want:
            raise OfficialCheckpointError(
                f"{self.report.source}: shape mismatch for distgen {key!r}: official gives {tuple(value.shape)}, the model built "
                f"from the config has {want}; the config's sizes differ from the checkpoint's"
            )
        self.out[key] = value.detach().to(self.target[key].dtype).clone()

    def copy(self, src: str, dst: str) -> None:
        self.put(dst, self.get(src))

    def drop(self, keys: Iterable[str], why: str) -> None:
        for k in keys:
            if k in self.src:
                self.used.add(k)
                self.report.dropped[k] = why

    def keep(self, keys: Iterable[str], why: str) -> None:
        for k in keys:
            self.out[k] = self.target[k].detach().clone()
            self.report.kept[k] = why

    def finish(self, prefix: str = "") -> dict[str, Tensor]:
        unknown = sorted(set(self.src) - self.used)
        if unknown:
            raise OfficialCheckpointError(
                f"{self.report.source}: {counted(len(unknown), 'official parameter')} {'has' if len(unknown) == 1 else 'have'} no distgen "
                f"counterpart: {first_of(unknown, 5, render=repr)}; "
                "the checkpoint was trained with an option this import does not map"
            )
        missing = sorted(k for k in self.target if k.startswith(prefix) and k not in self.out)
        if missing:
            raise OfficialCheckpointError(f"internal mapping error: distgen parameters left unfilled: {missing[:8]}")
        return {**{k: v.detach().clone() for k, v in self.target.items()}, **self.out}
