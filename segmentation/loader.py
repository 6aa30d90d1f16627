"""Loading segment definitions from a directory of JSON and YAML files."""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from segmentation.dependencies import check_references
from segmentation.errors import RuleError, SegmentationError, SegmentFileError
from segmentation.segment import Segment

if TYPE_CHECKING:
    from xiva_source.settings import Settings

__all__ = [
    "DEFAULT_SEGMENTS_DIR",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_FILE_BYTES",
    "SEGMENT_SUFFIXES",
    "check_segments_dir",
    "load_segments",
    "segments_dir",
]

#: The example segments shipped with the package.
DEFAULT_SEGMENTS_DIR = Path(__file__).resolve().parent / "segments"
SEGMENT_SUFFIXES = (".json", ".yaml", ".yml")
#: Largest segment file read, in bytes (a file is data from a user: bound what it can cost).
MAX_SEGMENT_FILE_BYTES = 2**20
#: Most segments one directory may define (those after it are reported, not loaded).
MAX_SEGMENTS = 10_000


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing aliases (``*name``): an alias bomb (a billion laughs) is a
    few hundred bytes that expand to gigabytes, in any field."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in segment files", event.start_mark
            )
        return super().compose_node(parent, index)


def segments_dir(
    directory: str | os.PathLike[str] | None = None, *, settings: Settings | None = None
) -> Path:
    """The segments directory: the argument, else ``SEGMENTS_DIR``, else the shipped examples.

    Args:
        directory: An explicit directory (``--segments-dir``); wins over the setting.
        settings: The project's settings (``SEGMENTS_DIR`` is ``settings.segments_dir``); loaded
            with :func:`~xiva_source.settings.load_settings` only when neither is given (a public
            Python API call).

    Raises:
        ConfigurationError: The settings had to be loaded and one of them is invalid.
    """
    if directory is not None:
        return Path(directory)
    if settings is None:
        from xiva_source.settings import load_settings

        settings = load_settings()
    return settings.segments_dir or DEFAULT_SEGMENTS_DIR


def _read(path: Path, max_bytes: int) -> list[Any]:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SegmentFileError(
                str(path),
                f"the file has {size:,} bytes, more than the limit of {max_bytes:,}",
                "split it into several files, or shorten it (a segment file holds rules, not data)",
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SegmentFileError(
            str(path), f"cannot read the file ({e})", "check it is UTF-8 text"
        ) from e
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader refusing aliases
    except (ValueError, yaml.YAMLError, RecursionError) as e:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        detail = _syntax_detail(e)
        raise SegmentFileError(
            str(path), f"invalid {kind}: {detail}", f"fix the {kind} syntax"
        ) from e
    if isinstance(data, dict) and "segments" in data and set(data) == {"segments"}:
        data = data["segments"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise SegmentFileError(
        str(path),
        f"expected a segment object or a list of them, got {type(data).__name__}",
        'write {"name": ..., "description": ..., "rules": [...]}',
    )


def _syntax_detail(error: BaseException) -> str:
    """The parser's complaint with its line and column (1-based), e.g. ``line 4, column 9:
    expected ',' or ']', but got ':'``."""
    mark = getattr(error, "problem_mark", None)  # yaml.MarkedYAMLError
    if mark is not None:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"{where}: {problem}" + (f" ({context})" if context else "")
    if isinstance(error, json.JSONDecodeError):
        return f"line {error.lineno}, column {error.colno}: {error.msg}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise SegmentFileError(
            str(directory),
            "the segments directory does not exist",
            "create it, or point SEGMENTS_DIR / --segments-dir at the directory of segment files",
        )
    return sorted(p for p in directory.iterdir() if p.suffix in SEGMENT_SUFFIXES and p.is_file())


def _load(
    directory: Path, feature_names: Collection[str] | None, max_file_bytes: int
) -> tuple[list[Segment], list[SegmentationError]]:
    segments: list[Segment] = []
    errors: list[SegmentationError] = []
    seen: dict[str, Path] = {}
    for path in _files(directory):
        try:
            items = _read(path, max_file_bytes)
        except SegmentFileError as e:
            errors.append(e)
            continue
        if len(segments) + len(items) > MAX_SEGMENTS:
            errors.append(
                SegmentFileError(
                    str(path),
                    f"more than {MAX_SEGMENTS:,} segments in the directory: this file's "
                    f"{len(items):,} are not loaded",
                    "keep fewer segments in one directory",
                )
            )
            continue
        for item in items:
            try:
                seg = Segment.from_dict(item)
                if feature_names is not None:
                    seg.validate(feature_names)
            except RuleError as e:
                errors.append(SegmentFileError(str(path), e.problem, e.fix))
                continue
            if seg.name in seen:
                errors.append(
                    SegmentFileError(
                        str(path),
                        f"segment {seg.name!r} is also defined in {seen[seg.name].name}",
                        "give every segment a unique name",
                    )
                )
                continue
            seen[seg.name] = path
            segments.append(seg)
    # {"segment": ...} references: unknown names and cycles, reported at the referencing file.
    segments, problems = check_references(segments)
    for problem in problems:
        where = str(seen[problem.segment or ""])
        errors.append(SegmentFileError(where, problem.problem, problem.fix))
    return segments, errors


def load_segments(
    directory: str | os.PathLike[str] | None = None,
    *,
    feature_names: Collection[str] | None = None,
    settings: Settings | None = None,
    max_file_bytes: int = MAX_SEGMENT_FILE_BYTES,
) -> list[Segment]:
    """Load every segment of a directory (``*.json``, ``*.yaml``, ``*.yml``, sorted by file).

    A file holds one segment object, a list of them, or ``{"segments": [...]}``.

    Args:
        directory: The directory; default ``SEGMENTS_DIR`` or the shipped examples.
        feature_names: When given, every rule's features are validated against them.
        settings: Where ``SEGMENTS_DIR`` comes from (see :func:`segments_dir`).
        max_file_bytes: A larger file is refused (default :data:`MAX_SEGMENT_FILE_BYTES`).

    Returns:
        The segments, in file order.

    Raises:
        SegmentFileError: The first problem (unreadable file, bad syntax, refused rule, unknown
            feature, duplicate name), naming the file, segment and rule.
    """
    where = segments_dir(directory, settings=settings)
    segments, errors = _load(where, feature_names, max_file_bytes)
    if errors:
        raise errors[0]
    return segments


def check_segments_dir(
    directory: str | os.PathLike[str] | None = None,
    *,
    feature_names: Collection[str] | None = None,
    settings: Settings | None = None,
    max_file_bytes: int = MAX_SEGMENT_FILE_BYTES,
) -> tuple[list[Segment], list[SegmentationError]]:
    """Load a directory and collect *every* problem instead of stopping at the first.

    Args:
        directory: As for :func:`load_segments`.
        feature_names: As for :func:`load_segments`.
        settings: As for :func:`load_segments`.
        max_file_bytes: As for :func:`load_segments`.

    Returns:
        The valid segments and the errors (empty when all is well).
    """
    try:
        return _load(segments_dir(directory, settings=settings), feature_names, max_file_bytes)
    except SegmentFileError as e:
        return [], [e]
