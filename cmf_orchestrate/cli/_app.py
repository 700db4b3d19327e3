"""The ``cmf-orchestrate`` command group: shared options, settings, output and error handling."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

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
        return open_store(location)


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


#: How a column gives way when a table is wider than the terminal. ``end``, ``middle``,
#: ``start``: ellipsized there; ``hash``: ellipsized at the end, before any other column;
#: ``time``: a ``YYYY-MM-DD HH:MM:SS`` cell loses its year (this year's) and seconds;
#: ``keep``: never shortened; ``wrap``: wrapped at spaces.
Fit = Literal["end", "middle", "start", "hash", "time", "keep", "wrap"]

_GAP = 2  # the space one column's right padding and the separator take in the table style below
_MIN_SHRUNK = 10  # narrowest a shortened column gets before rows are laid out vertically
_MIN_HASH = 9  # eight hex digits and an ellipsis
_SHORT = 12  # columns whose cells all fit this width (ids, states, counts) are never shortened
_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d-\d\d \d\d:\d\d):\d\d$")


def emit_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    section: bool = False,
    fit: Mapping[str, Fit] | None = None,
) -> None:
    """Print a table on stdout (fitted to the terminal, tab-separated columns otherwise).

    On a terminal the table never exceeds its width: empty columns are left out, md5s are cut to their first digits,
    timestamps lose year and seconds, long cells are ellipsized (paths in the middle, so
    the file name stays), and when even that cannot fit, each row is laid out vertically
    as ``column  value`` lines.

    Args:
        title: Caption of the table.
        columns: Column headers.
        rows: Cells, converted with ``str`` (containers as JSON).
        section: Part of a multi-table report: in plain text, a ``# title`` line precedes it.
        fit: How named columns give way (default: ``keep`` for short columns, ``end`` for others).
    """
    console = out_console()
    cells = [[_cell(v) for v in row] for row in rows]
    if not console.is_terminal:
        # Pipes get stable, grep-able text: a header line and one tab-separated line per row.
        if section and title:
            click.echo(f"# {title}")
        click.echo("\t".join(columns))
        for row in cells:
            click.echo("\t".join(" ".join(c.split()) if "\n" in c or "\t" in c else c for c in row))
        return
    # On a terminal a column nobody filled in (no errors, say) is only noise.
    shown = [i for i in range(len(columns)) if i == 0 or any(row[i] for row in cells)]
    if len(shown) < len(columns):
        columns = [columns[i] for i in shown]
        cells = [[row[i] for i in shown] for row in cells]
    layout = fit_columns(columns, cells, console.width, fit or {})
    if layout is None:
        _print_vertical(console, title, columns, cells)
        return
    widths, modes, cells = layout
    table = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    for column, width, mode in zip(columns, widths, modes, strict=True):
        wrap = mode == "wrap"
        table.add_column(column, width=width, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
    for row in cells:
        table.add_row(
            *(escape(c if m == "wrap" else ellipsize(c, w, m)) for c, w, m in zip(row, widths, modes, strict=True))
        )
    console.print(table)


def _natural(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> list[int]:
    return [
        max([cell_len(header), *(max((cell_len(line) for line in row[i].splitlines()), default=0) for row in cells)])
        for i, header in enumerate(columns)
    ]


def _compact_time(cell: str) -> str:
    match = _TIMESTAMP.match(cell)
    if not match:
        return cell
    return match.group(2) if int(match.group(1)) == datetime.now().year else cell[:10]


def fit_columns(
    columns: Sequence[str], cells: Sequence[Sequence[str]], width: int, fit: Mapping[str, Fit]
) -> tuple[list[int], list[Fit], list[list[str]]] | None:
    """Widths that fit ``width``, how each column gives way, and the cells; None when nothing fits.

    Short columns keep their width. Timestamps are compacted first, md5 columns cut next,
    then the widest of the others are narrowed, each to no less than its header or ten cells.
    """
    rows = [list(row) for row in cells]
    natural = _natural(columns, rows)
    modes: list[Fit] = [fit.get(h, "keep" if natural[i] <= _SHORT else "end") for i, h in enumerate(columns)]
    available = width - _GAP * (len(columns) - 1)
    if sum(natural) <= available:
        return natural, modes, rows
    if "time" in modes:
        rows = [[_compact_time(c) if m == "time" else c for c, m in zip(row, modes, strict=True)] for row in rows]
        natural = _natural(columns, rows)
    fixed = [m in ("keep", "time") for m in modes]
    floors = [
        n if f else min(n, max(cell_len(h), _MIN_HASH if m == "hash" else _MIN_SHRUNK))
        for n, m, h, f in zip(natural, modes, columns, fixed, strict=True)
    ]
    if sum(floors) > available:
        return None
    widths = list(natural)
    # md5s give way first (their first digits identify them), then the widest other columns.
    for group in ([i for i, m in enumerate(modes) if m == "hash"], [i for i, f in enumerate(fixed) if not f]):
        excess = sum(widths) - available
        if excess <= 0:
            break
        budget = sum(widths[i] for i in group) - excess
        _share(widths, floors, group, budget)
    return widths, modes, rows


def _share(widths: list[int], floors: Sequence[int], group: Sequence[int], budget: int) -> None:
    """Narrow the columns of ``group`` to ``budget`` cells in all, cutting the widest first."""
    if not group:
        return
    natural = {i: widths[i] for i in group}
    low, high = 0, max(natural.values())
    while low < high:  # the largest cap on these columns that stays within the budget
        cap = (low + high + 1) // 2
        if sum(max(floors[i], min(n, cap)) for i, n in natural.items()) <= budget:
            low = cap
        else:
            high = cap - 1
    for i, n in natural.items():
        widths[i] = max(floors[i], min(n, low))
    spare = budget - sum(widths[i] for i in group)
    for i in sorted(group, key=lambda i: widths[i] - natural[i]):  # rounding leftovers to the most cut
        if spare <= 0:
            break
        extra = min(spare, natural[i] - widths[i])
        widths[i] += extra
        spare -= extra


def ellipsize(text: str, width: int, mode: Fit = "end") -> str:
    """``text`` shortened to ``width`` terminal cells with an ellipsis at the end, middle or start."""
    text = " ".join(text.split()) if "\n" in text or "\t" in text else text
    if cell_len(text) <= width or mode in ("keep", "wrap"):
        return text
    if width <= 1:
        return "…"[:width]
    if mode == "start":
        return "…" + _tail(text, width - 1)
    if mode == "middle":
        head = (width - 1) // 2
        return _head(text, head) + "…" + _tail(text, width - 1 - head)
    return _head(text, width - 1) + "…"


def _head(text: str, width: int) -> str:
    out, used = [], 0
    for char in text:
        size = cell_len(char)
        if used + size > width:
            break
        out.append(char)
        used += size
    return "".join(out)


def _tail(text: str, width: int) -> str:
    return _head(text[::-1], width)[::-1]


def _print_vertical(
    console: Console, title: str | None, columns: Sequence[str], cells: Sequence[Sequence[str]]
) -> None:
    """Each row as a block of ``column  value`` lines: for terminals too narrow for a table."""
    if title:
        console.print(Text(title, style="bold"))
    label_width = max((cell_len(c) for c in columns[1:]), default=0)
    value_width = max(console.width - label_width - 4, 8)
    for row in cells:
        console.print(Text(ellipsize(f"{columns[0]} {row[0]}", console.width), style="bold"))
        for header, value in zip(columns[1:], row[1:], strict=True):
            if value:
                line = Text("  " + header.ljust(label_width) + "  ", style="dim")
                line.append(ellipsize(value, value_width))
                console.print(line, no_wrap=True, overflow="ellipsis")


def emit_mapping(title: str, mapping: Mapping[str, Any]) -> None:
    """Print key/value pairs (a two-column table; long values wrap rather than lose their end)."""
    emit_table(
        title,
        ("property", "value"),
        [(k, v) for k, v in mapping.items()],
        section=True,
        fit={"property": "keep", "value": "wrap"},
    )


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
        except BrokenPipeError:
            # The reader went away (`| head`): not an error of ours. Point stdout at nothing so
            # that flushing it at exit cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            raise click.exceptions.Exit(141) from None
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
