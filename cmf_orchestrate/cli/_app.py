"""The ``cmf-orchestrate`` command group: shared options, settings, output and error handling."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cmf_orchestrate.errors import CmfError, StoreUnavailableError

if TYPE_CHECKING:
    from cmf_orchestrate.settings import CmfSettings
    from cmf_orchestrate.store import MetadataStore

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

PROG = "cmf-orchestrate"


class CliError(click.ClickException):
    """A failure reported as one line on stderr with exit status 1."""

    def __init__(self, message: str) -> None:
        # One line, whatever the message looks like (native errors end in newlines, tabs).
        super().__init__(" ".join(message.split()) or "failed")

    def show(self, file: Any = None) -> None:
        click.echo(f"{PROG}: error: {self.format_message()}", err=True, file=file)


@dataclass
class State:
    """Per-invocation state shared by the subcommands (kept in ``ctx.obj``)."""

    project_root: Path | None = None
    debug: bool = False
    store_arg: str | None = None
    json_mode: bool = False
    _settings: CmfSettings | None = field(default=None, repr=False)

    def settings(self) -> CmfSettings:
        """The configuration: project file, then environment, then command-line options.

        Raises:
            ConfigError: The configuration is invalid.
        """
        if self._settings is None:
            from cmf_orchestrate.settings import CmfSettings

            self._settings = CmfSettings.from_env(store=_store_value(self.store_arg), project_root=self.project_root)
        return self._settings

    def store(self, *, must_exist: bool = True) -> MetadataStore:
        """Open the metadata store.

        Args:
            must_exist: For reading commands: refuse to create an empty SQLite file.

        Raises:
            StoreUnavailableError: The store is missing or cannot be reached.
        """
        from cmf_orchestrate.store import open_store

        location = self.settings().location
        if must_exist and location.backend == "sqlite" and location.path is not None and not location.path.exists():
            raise StoreUnavailableError(
                f"no metadata store at {location.path} (record a pipeline run first, or pass --store PATH|URL)"
            )
        if self.debug:
            return open_store(location)
        # ML Metadata's C++ code logs connection failures straight to file descriptor 2, over
        # several lines; keep them off the terminal and fold their gist into our one line.
        with _native_stderr() as captured:
            try:
                return open_store(location)
            except StoreUnavailableError as exc:
                detail = _native_error(captured())
                if detail:
                    raise StoreUnavailableError(f"{str(exc).strip()} ({location.scrub(detail)})") from exc
                raise


@contextmanager
def _native_stderr() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 2 to a temporary file; yield a reader of what was written."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)

        def read() -> str:
            sink.seek(0)
            return sink.read().decode("utf-8", errors="replace")

        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _native_error(text: str) -> str:
    """The informative part of ML Metadata's native log lines (``...error: <this>``)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error:" in line.lower():
            return line.split("rror:", 1)[1].strip()
        if line.startswith("E") and "]" in line:
            return line.split("]", 1)[1].strip()
    return lines[-1] if lines and not lines[-1].startswith(("WARNING", "I")) else ""


def _store_value(value: str | None) -> str | None:
    # A plain path on the command line means relative to where the user stands, not the project root.
    if value is None or "://" in value or value.startswith("sqlite:"):
        return value
    return str(Path(value).expanduser().resolve())


def state() -> State:
    """The :class:`State` of the running command."""
    ctx = click.get_current_context()
    obj = ctx.find_object(State)
    if obj is None:
        obj = ctx.ensure_object(State)
    return obj


# --------------------------------------------------------------------------- options


def _set_store(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.ensure_object(State).store_arg = value
    return value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(State).debug = True
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s", force=True)
    return value


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(State).json_mode = True
    return value


def store_option(func: F) -> F:
    """Add ``--store`` (path or URL of the metadata store)."""
    return click.option(
        "--store",
        metavar="PATH|URL",
        expose_value=False,
        callback=_set_store,
        help="Metadata store: a SQLite file path, sqlite:///path, postgresql://... or mysql://... "
        "(default: cmf-orchestrate.toml, then $CMF_STORE, then ./mlmd).",
    )(func)


def debug_option(func: F) -> F:
    """Add ``--debug`` (tracebacks and debug logs)."""
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        callback=_set_debug,
        help="Show debug logs and the full traceback of an error.",
    )(func)


def json_option(func: F) -> F:
    """Add ``--json`` (machine-readable output, no progress bars)."""
    return click.option(
        "--json",
        "json_mode",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON instead of tables (and no progress bars).",
    )(func)


def common(func: F) -> F:
    """``--store`` and ``--debug``: every subcommand takes both."""
    return store_option(debug_option(func))


# --------------------------------------------------------------------------- output


def out_console() -> Console:
    """Console for results on stdout (plain text when not a terminal)."""
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        # Pipes and files get long lines rather than text wrapped at 80 columns.
        console = Console(highlight=False, soft_wrap=False, width=240)
    return console


def err_console() -> Console:
    """Console for messages on stderr."""
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=240)
    return console


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_table(
    title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, section: bool = False
) -> None:
    """Print a table on stdout (a rich table on a terminal, tab-separated columns otherwise).

    Args:
        title: Caption of the table.
        columns: Column headers.
        rows: Cells, converted with ``str`` (containers as JSON).
        section: Part of a multi-table report: in plain text, a ``# title`` line precedes it.
    """
    console = out_console()
    if not console.is_terminal:
        # Pipes get stable, grep-able text: a header line and one tab-separated line per row.
        if section and title:
            click.echo(f"# {title}")
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(_cell(v) for v in row))
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def emit_mapping(title: str, mapping: Mapping[str, Any]) -> None:
    """Print key/value pairs (a two-column table)."""
    emit_table(title, ("property", "value"), [(k, v) for k, v in mapping.items()], section=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def info(message: str) -> None:
    """A status line on stderr (never in JSON mode)."""
    if not state().json_mode:
        err_console().print(message)


class ProgressReporter:
    """``(done, total)`` callback driving a progress bar, or doing nothing when quiet."""

    def __init__(self, progress: Progress | None, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=None) if progress is not None else None

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` units."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total)


@contextmanager
def progress(description: str) -> Iterator[ProgressReporter]:
    """A progress bar on stderr when it is a terminal and not in ``--json`` mode."""
    console = err_console()
    if state().json_mode or not console.is_terminal:
        yield ProgressReporter(None, description)
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        yield ProgressReporter(bar, description)


# --------------------------------------------------------------------------- group


class _Group(click.Group):
    """Turns every failure into one line on stderr and exit status 1 (traceback with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except CmfError as exc:
            raise _as_cli_error(ctx, exc, str(exc)) from exc
        except OSError as exc:
            raise _as_cli_error(ctx, exc, _os_message(exc)) from exc
        except Exception as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
            if not _debugging(ctx):
                message += " (run with --debug for the traceback)"
            raise _as_cli_error(ctx, exc, message) from exc


def _debugging(ctx: click.Context) -> bool:
    obj = ctx.find_object(State)
    return bool(obj and obj.debug)


def _os_message(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


def _as_cli_error(ctx: click.Context, exc: BaseException, message: str) -> CliError:
    if _debugging(ctx):
        traceback.print_exception(exc, file=sys.stderr)
    return CliError(message or type(exc).__name__)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "-C",
    "--project-root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CMF_PROJECT_ROOT",
    help="Project root (default: the current directory, or $CMF_PROJECT_ROOT).",
)
@debug_option
@click.version_option(package_name="cmf-orchestrate", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, project_root: Path | None) -> None:
    """Inspect what cmf-orchestrate recorded, trace lineage, and move versioned artifacts.

    Run it in the project root. Every subcommand takes --store (path or URL of the
    metadata store) and --help.
    """
    obj = ctx.ensure_object(State)
    obj.project_root = project_root
    if not obj.debug and not logging.getLogger().handlers:
        # Results and errors are the command's own output; library warnings would repeat them
        # over several lines. --debug brings the logs back.
        logging.getLogger().addHandler(logging.NullHandler())


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run the command line and return the exit status."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo(f"{PROG}: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    return result if isinstance(result, int) else 0
