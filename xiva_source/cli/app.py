"""The command-line framework shared by ``xiva-source`` and ``segmentation``.

One parser tree per console script, with the same conventions everywhere:

- global options (``--repo``, ``--debug``, ``--log-level``, ``--version`` and a tree's own) are
  accepted before or after the subcommand: each subparser repeats them with ``SUPPRESS`` defaults,
  so a value given after the subcommand wins and one given before is not overwritten;
- every subcommand has a one-line help and a description; defaults are shown in help;
- one log format on stderr;
- exit status 0 success, 1 failure, 2 usage or configuration error (also with no command);
- a mistyped command or choice gets "did you mean" (:class:`SuggestingParser`: difflib, since
  argparse's own ``suggest_on_error`` is Python 3.14's);
- settings are loaded once per command, with the ``--repo`` path (the ``.env`` beside or above
  it), and handed to the command; any error goes through :func:`~xiva_source.cli.boundary.guard`.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, NoReturn

from xiva_source.cli.boundary import EXIT_USAGE, guard
from xiva_source.redaction import RedactingFormatter

if TYPE_CHECKING:
    from xiva_source.settings import Settings

__all__ = [
    "DEFAULT_REPO",
    "LOG_FORMAT",
    "Command",
    "CommandContext",
    "CommandTree",
    "SuggestingParser",
    "add_global_options",
    "configure_logging",
    "execute",
    "single_command_main",
    "stderr_handlers",
    "version_text",
]

DEFAULT_REPO = "feature_repo"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The one log format of every command (stderr)."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_OWN_LOGGERS = ("xiva_source", "segmentation")
_DISTRIBUTION = "loyalty-feature-store"

OptionAdder = Callable[[Any, Callable[[object], object]], None]
"""Adds a tree's global options to a parser; the second argument wraps each default."""


class SuggestingParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose "invalid choice" error names the closest choice.

    ``xiva-source stauts`` -> ``argument COMMAND: invalid choice: 'stauts' (choose from ...);
    did you mean 'status'?``. Subparsers are of this class too (argparse creates them with the
    parent's class).
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``message`` (with a suggestion when one is close), exit 2."""
        found = re.search(r"invalid choice: '([^']*)'", message)
        if found:
            candidates = [
                str(choice)
                for action in self._actions
                if action.choices is not None
                for choice in action.choices
            ]
            close = difflib.get_close_matches(found.group(1), candidates, n=1, cutoff=0.6)
            if close:
                message = f"{message}; did you mean '{close[0]}'?"
        super().error(message)


@dataclass(frozen=True)
class CommandContext:
    """What a command receives besides its parsed arguments.

    Attributes:
        prog: The program name as the user typed it (``xiva-source``, ``python -m xiva_source``).
        settings: The settings, loaded once with the ``--repo`` path; ``None`` for a command that
            needs none (``simulator``, ``demo``).
        debug: ``--debug`` was given.
    """

    prog: str
    settings: Settings | None
    debug: bool

    def require_settings(self) -> Settings:
        """The settings (a command declared ``needs_settings``, so they are there)."""
        assert self.settings is not None, "command declared needs_settings=False"
        return self.settings


@dataclass(frozen=True)
class Command:
    """One subcommand.

    Attributes:
        name: The subcommand's name.
        help: One line, shown in the tree's command list.
        description: The subcommand's help page text.
        configure: Adds the subcommand's own arguments to its parser.
        run: Runs it; returns the exit status (errors are raised, the boundary prints them).
        needs_settings: Load the settings before running (a bad setting fails with exit 2).
    """

    name: str
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, CommandContext], int]
    needs_settings: bool = True


@dataclass(frozen=True)
class CommandTree:
    """A console script: its commands and global options.

    Attributes:
        prog: Default program name (the console script's).
        description: The top-level help text.
        commands: The subcommands, in help order.
        global_options: Extra global options of this tree (accepted before or after the command).
        epilog: Text after the help (exit statuses).
    """

    prog: str
    description: str
    commands: Sequence[Command]
    global_options: OptionAdder | None = None
    epilog: str = (
        "Exit status: 0 success, 1 failure, 2 usage or configuration error. Options may be given "
        "before or after the command."
    )
    _by_name: dict[str, Command] = field(default_factory=dict, init=False, compare=False)

    def parser(self, prog: str | None = None) -> argparse.ArgumentParser:
        """The whole parser tree."""
        parser = SuggestingParser(
            prog=prog or self.prog,
            description=self.description,
            epilog=self.epilog,
        )
        self._add_global_options(parser, keep_defaults=True)
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
        for command in self.commands:
            sub_parser = sub.add_parser(
                command.name,
                help=command.help,
                description=command.description,
                epilog=self.epilog,
            )
            command.configure(sub_parser)
            self._add_global_options(sub_parser, keep_defaults=False)
            self._by_name[command.name] = command
        return parser

    def main(self, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
        """Parse ``argv`` (default ``sys.argv[1:]``), run the command; returns the exit status."""
        parser = self.parser(prog)
        try:
            args = parser.parse_args(list(argv) if argv is not None else None)
        except SystemExit as e:  # argparse: --help/--version 0, bad usage 2
            return e.code if isinstance(e.code, int) else EXIT_USAGE
        if args.command is None:
            parser.print_usage(sys.stderr)
            print(
                f"{parser.prog}: error: a command is required (see {parser.prog} --help)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        return execute(self._by_name[args.command], args, prog=parser.prog)

    def _add_global_options(self, parser: argparse.ArgumentParser, *, keep_defaults: bool) -> None:
        add_global_options(parser, keep_defaults=keep_defaults, extra=self.global_options)


def add_global_options(
    parser: argparse.ArgumentParser, *, keep_defaults: bool, extra: OptionAdder | None = None
) -> None:
    """``--repo``, ``--log-level``, ``--debug``, ``--version`` and a tree's ``extra`` options.

    Args:
        parser: The parser to add them to.
        keep_defaults: ``True`` on the top-level parser; ``False`` on subparsers, whose defaults
            are ``SUPPRESS`` so they never overwrite a value given before the subcommand.
        extra: A tree's own global options.
    """

    def default(value: object) -> object:
        return value if keep_defaults else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--repo",
        default=default(DEFAULT_REPO),
        metavar="PATH",
        help="the Feast repository; its .env is looked for beside and above it "
        f"(default: {DEFAULT_REPO})",
    )
    group.add_argument(
        "--log-level",
        default=default("WARNING"),
        choices=LOG_LEVELS,
        help="level of the log messages on stderr (default: WARNING)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show the traceback of an error, and the project's debug logs",
    )
    group.add_argument("--version", action="version", version=version_text(parser.prog))
    if extra is not None:
        extra(group, default)


def execute(command: Command, args: argparse.Namespace, *, prog: str) -> int:
    """Run a parsed command inside the error boundary; returns the exit status.

    Logging is configured (one format), the settings are loaded once with ``--repo`` when the
    command needs them, and any error is printed by :func:`~xiva_source.cli.boundary.guard`.
    """
    configure_logging(args.log_level, debug=args.debug)

    def run() -> int:
        settings = None
        if command.needs_settings:
            from xiva_source.settings import load_settings

            settings = load_settings(repo_path=args.repo)
        context = CommandContext(prog=prog, settings=settings, debug=args.debug)
        return command.run(args, context)

    return guard(run, label=f"{prog} {command.name}", debug=args.debug)


def single_command_main(command: Command, argv: Sequence[str] | None = None, *, prog: str) -> int:
    """A program made of one command, its options given without the command's name.

    Returns:
        The exit status (0 ok, 1 failure, 2 usage or configuration error).
    """
    parser = SuggestingParser(prog=prog, description=command.description)
    command.configure(parser)
    add_global_options(parser, keep_defaults=True)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return execute(command, args, prog=prog)


def version_text(prog: str) -> str:
    """``<prog> <version>`` of the installed distribution."""
    try:
        version = metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return f"{prog} {version}"


def stderr_handlers() -> list[logging.Handler]:
    """The root logger's handlers that :func:`configure_logging` installed (stderr)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, _StderrHandler)]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirect)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        del value


def configure_logging(level: str = "WARNING", *, debug: bool = False) -> None:
    """One log format on stderr; ``debug`` adds the project's own DEBUG messages.

    Idempotent: a second call (another command in the same process) replaces the handler.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))  # every logger's records, secrets masked
    root.addHandler(handler)
    root.setLevel(level)
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.NOTSET)
