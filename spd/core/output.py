"""How a command prints what it lists: an aligned table for a person at a terminal, JSON for a
script (stdout piped or redirected, or `--json` anywhere), as kubectl does.

Every listing command (`ops`, `objects`, `status`, `validate`, `check`, the `exec --all-pages`
summary) makes that choice here and only here: `wants_json(args.json)`, then `print_json` or
`print_table`, or `print_listing` for both at once. The table is drawn by rich, imported only
when a table is printed, so `spd --help` and piped commands never load it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

MAX_CANDIDATES = 5  # a did-you-mean error names at most this many
MIN_WRAP_WIDTH = 24  # a wrapping column is never narrower than this, however narrow the terminal
# Blanks at the end of a line, before the style codes that close it (the bold header's reset).
_TRAILING_BLANKS = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$", re.MULTILINE)


@dataclass(frozen=True)
class Column:
    """One column of a table: its header and how a row gives its cell."""

    header: str
    key: str | Callable[[Any], Any]  # a key of the row, or a function of the row
    justify: str = "left"  # "right" for numbers
    wrap: bool = False  # prose (a quoted model sentence): folded to the terminal's width

    def cell(self, row: Mapping[str, Any]) -> str:
        """The row's value in this column as text (None is "-", lists are comma-separated)."""
        value = self.key(row) if callable(self.key) else row.get(self.key)
        return cell_text(value)


def cell_text(value: Any) -> str:
    """A value as a table shows it: "-" for nothing, yes/no, lists joined by commas."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def is_terminal(stream: IO[Any] | None = None) -> bool:
    """True when `stream` (stdout by default) is a terminal a person reads."""
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


def wants_json(json_flag: bool = False, stream: IO[Any] | None = None) -> bool:
    """JSON with `--json`, or when nobody reads the output on a terminal."""
    return json_flag or not is_terminal(stream)


def print_json(value: Any, stream: IO[Any] | None = None) -> None:
    """Prints JSON, indented when a person is reading, one line for a pipe."""
    stream = sys.stdout if stream is None else stream
    option = orjson.OPT_INDENT_2 if is_terminal(stream) else 0
    data = orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS) + b"\n"
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode())
        stream.flush()


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *,
                stream: IO[Any] | None = None, empty: str = "nothing to list",
                header: bool = True) -> None:
    """Prints `rows` as an aligned table with a header line (unless `header` is False);
    `empty` when there are none."""
    rows = list(rows)
    stream = sys.stdout if stream is None else stream
    if not rows:
        stream.write(f"{empty}\n")
        stream.flush()
        return
    console = _console(stream)
    from rich.table import Table  # on a terminal only: rich is not loaded for pipes or --help

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold",
                  highlight=False, show_header=header)
    for column in columns:
        table.add_column(column.header, justify=column.justify,  # type: ignore[arg-type]
                         no_wrap=not column.wrap, overflow="fold" if column.wrap else "ellipsis")
    cells = [[column.cell(row) for column in columns] for row in rows]
    for line in cells:
        table.add_row(*line)
    if any(column.wrap for column in columns):
        # Prose wraps at the terminal's width; the other columns keep their whole values.
        console.width = max(console.width, _unwrapped_width(columns, cells, header))
    else:
        # As kubectl: a row is never cut or folded to fit; a narrow terminal wraps the long ones.
        console.width = max(console.width, _natural_width(console, table))
    with console.capture() as captured:
        console.print(table)
    # rich pads every cell to its column's width, the last one too: one long cell there (a poller's
    # last error) gave every other line hundreds of trailing blanks, a screen of empty wrapped lines.
    stream.write(_TRAILING_BLANKS.sub(r"\1", captured.get()))
    stream.flush()


def _unwrapped_width(columns: Sequence[Column], cells: Sequence[Sequence[str]], header: bool) -> int:
    """The width a table needs with its wrapping columns at MIN_WRAP_WIDTH, the others whole."""
    from rich.cells import cell_len  # lazy: see the module docstring

    widths = []
    for index, column in enumerate(columns):
        texts = [line[index] for line in cells] + ([column.header] if header else [])
        widths.append(MIN_WRAP_WIDTH if column.wrap else max(cell_len(text) for text in texts))
    return sum(widths) + 2 * (len(widths) - 1)  # rich's padding: one blank each side of a gap


def print_listing(data: Any, rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *,
                  json_flag: bool = False, empty: str = "nothing to list") -> None:
    """The one choice: `data` as JSON for scripts, else `rows` as a table for a person."""
    if wants_json(json_flag):
        print_json(data)
    else:
        print_table(rows, columns, empty=empty)


def _console(stream: IO[Any]) -> Any:
    """A rich console on `stream` that takes text as it is (no markup, no highlighting)."""
    from rich.console import Console  # lazy: see the module docstring

    return Console(file=stream, markup=False, highlight=False, emoji=False, soft_wrap=False)


def _natural_width(console: Any, table: Any) -> int:
    """The width `table` takes when nothing in it is wrapped."""
    from rich.measure import Measurement  # lazy: see the module docstring

    return int(Measurement.get(console, console.options.update(width=1_000_000), table).maximum)


def candidates(names: Iterable[str], limit: int = MAX_CANDIDATES) -> list[str]:
    """At most `limit` names for a did-you-mean hint, in the order given, without repeats."""
    return list(dict.fromkeys(names))[:limit]
