"""What the run's rules compare: fingerprints of code, dependencies, CI and outputs, and the other
milestones' sessions, as seen at one moment."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fingerprint:
    """What a guardrail saw at one moment: a name -> digest/value mapping, JSON-serialisable."""

    entries: dict[str, str]

    def to_json(self) -> dict[str, str]:
        """A sorted copy of the entries, ready for ``json.dump``."""
        return dict(sorted(self.entries.items()))

    def diff(self, later: Fingerprint) -> list[str]:
        """One sorted line per name that changed, was added or was removed by ``later``."""
        before, after = self.entries, later.entries
        lines = [f"added: {name}" for name in after.keys() - before.keys()]
        lines += [f"removed: {name}" for name in before.keys() - after.keys()]
        lines += [
            f"changed: {name}"
            for name in before.keys() & after.keys()
            if before[name] != after[name]
        ]
        return sorted(lines)


@dataclass(frozen=True)
class Neighbour:
    """Another milestone's sessions as one session saw them at one moment."""

    live: bool  # some session held its lock
    newest: int  # its highest run number, 0 before its first run
    open_from: int  # its first run number a session may still write: after its newest finished one


@dataclass(frozen=True)
class Fingerprints:
    """Everything the rules compare, taken at one moment."""

    code: Fingerprint
    dependencies: Fingerprint
    ci: Fingerprint
    outputs: Fingerprint
    neighbours: dict[str, Neighbour]
