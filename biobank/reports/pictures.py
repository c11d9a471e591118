"""Charts drawn on the server by Matplotlib (Agg, SVG output: no script, nothing from a CDN).

Every picture carries its text alternative inside the SVG: a ``<title>`` (what it shows) and
a ``<desc>`` (its numbers in words), with ``role="img"`` and ``aria-labelledby`` pointing at
both, so a screen reader reads the same facts the picture draws. The table behind each picture
is the report's JSON and CSV. Figures are made with ``matplotlib.figure.Figure`` (not pyplot:
no global state shared between requests), and the SVG is made reproducible (fixed hash salt,
no date in its metadata).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402 (after choosing the backend)
from matplotlib.patches import Patch, Rectangle  # noqa: E402

MIME = "image/svg+xml"
# Colour-blind-safe (Okabe–Ito), each with enough contrast on white.
COLOURS = ("#0072B2", "#D55E00", "#999999", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_RC: dict[str, Any] = {
    "svg.hashsalt": "biobank",
    "svg.fonttype": "none",
    "font.size": 11,
    "text.parse_math": False,  # a "$" in a freezer's name is text, not TeX
    "font.family": "DejaVu Sans",
}
_SVG_OPEN = re.compile(r"<svg\b[^>]*>")


def _style() -> Any:
    """The pictures' Matplotlib settings, for the drawing in hand only."""
    # Matplotlib types the keys as literals; these are its own settings, by name.
    return matplotlib.rc_context(_RC)  # type: ignore[arg-type]


def _svg(figure: Figure, title: str, description: str, role: str = "img") -> str:
    """The figure as SVG text with its title and description as the text alternative
    (``role``: "group" for a picture holding links, whose children a reader must reach)."""
    out = io.StringIO()
    with _style():
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    opening = _SVG_OPEN.search(text)
    if opening is None:  # pragma: no cover - Matplotlib always writes one
        raise RuntimeError("Matplotlib wrote no <svg> element")
    tag = opening.group(0)
    # Ids of their own per chart: several pictures may sit inline in one page.
    key = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "chart"
    labelled = tag[:-1] + f' role="{role}" aria-labelledby="{key}-title {key}-desc">'
    alternative = (
        f'<title id="{key}-title">{escape(title)}</title>'
        f'<desc id="{key}-desc">{escape(description)}</desc>'
    )
    return text[: opening.start()] + labelled + alternative + text[opening.end() :]


def _figure(rows: int = 0) -> Figure:
    height = max(3.0, min(0.32 * rows + 1.5, 14.0))
    with _style():
        return Figure(figsize=(8.0, height), layout="constrained")


def stacked_bars(
    title: str,
    description: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    xlabel: str,
) -> str:
    """Horizontal bars, one per category, stacked by series (counts), with a legend."""
    with _style():
        figure = _figure(len(categories))
        axes = figure.subplots()
        positions = list(range(len(categories)))
        left = [0.0] * len(categories)
        for (name, values), colour in zip(series.items(), COLOURS, strict=False):
            axes.barh(positions, values, left=left, label=name, color=colour)
            left = [a + b for a, b in zip(left, values, strict=True)]
        axes.set_yticks(positions, labels=list(categories))
        axes.invert_yaxis()
        axes.set_xlabel(xlabel)
        axes.set_title(title)
        if categories:
            axes.legend(loc="lower right", fontsize=8)
        else:
            axes.text(
                0.5, 0.5, "nothing to show", ha="center", va="center", transform=axes.transAxes
            )
        return _svg(figure, title, description)


def lines(
    title: str,
    description: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    ylabel: str,
) -> str:
    """One line per series over the labels (months), with a legend."""
    with _style():
        figure = _figure()
        axes = figure.subplots()
        positions = list(range(len(labels)))
        for (name, values), colour in zip(series.items(), COLOURS, strict=False):
            axes.plot(positions, values, label=name, color=colour, marker="o", markersize=3)
        step = max(1, len(labels) // 12)
        axes.set_xticks(positions[::step], labels=list(labels)[::step], rotation=45, ha="right")
        axes.set_ylabel(ylabel)
        axes.set_title(title)
        if labels:
            axes.legend(fontsize=8)
        else:
            axes.text(
                0.5, 0.5, "nothing to show", ha="center", va="center", transform=axes.transAxes
            )
        return _svg(figure, title, description)


def stock_and_flows(
    title: str,
    description: str,
    labels: Sequence[str],
    stock: Sequence[float],
    flows: Mapping[str, Sequence[float]],
) -> str:
    """Two panels over the same months: the stock (a line) above, the flows (bars) below."""
    with _style():
        figure = Figure(figsize=(8.0, 6.0), layout="constrained")
        top, bottom = figure.subplots(2, 1, sharex=True)
        positions = list(range(len(labels)))
        top.plot(positions, stock, color=COLOURS[0], marker="o", markersize=3)
        top.set_ylabel("tubes held")
        top.set_title(title)
        width = 0.8 / max(len(flows), 1)
        for index, ((name, values), colour) in enumerate(
            zip(flows.items(), COLOURS[1:], strict=False)
        ):
            bottom.bar(
                [p + index * width - 0.4 + width / 2 for p in positions],
                values,
                width=width,
                label=name,
                color=colour,
            )
        bottom.set_ylabel("tubes per month")
        step = max(1, len(labels) // 12)
        bottom.set_xticks(positions[::step], labels=list(labels)[::step], rotation=45, ha="right")
        bottom.legend(fontsize=8, ncols=2)
        return _svg(figure, title, description)


# A cell's link (matplotlib writes it inside the cell's group): a pointer's shortcut only,
# out of the tab order and hidden from screen readers, which reach the row's named link.
_CELL_LINK = re.compile(r'(<g id="cell-[0-9-]+">\s*<a )')


def matrix(
    title: str,
    description: str,
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Sequence[Sequence[str | None]],
    states: Mapping[str, tuple[str, str, str]],
    links: Sequence[str | None] | None = None,
) -> str:
    """A grid of rows × columns, each cell coloured (and hatched: not by colour alone) by its
    state (``states``: state → legend label, colour, hatch; None: an empty cell). With
    ``links`` (one per row), each row's label and cells link there."""
    with _style():
        figure = Figure(
            figsize=(
                min(2.5 + 0.55 * len(columns), 12.0),
                max(3.0, min(0.26 * len(rows) + 2.0, 40.0)),
            ),
            layout="constrained",
        )
        axes = figure.subplots()
        for y, row in enumerate(cells):
            for x, state in enumerate(row):
                if state is None:
                    continue
                _label, colour, hatch = states[state]
                cell = Rectangle(
                    (x - 0.45, y - 0.45),
                    0.9,
                    0.9,
                    facecolor=colour,
                    hatch=hatch,
                    edgecolor="white",
                    linewidth=0.5,
                )
                cell.set_gid(f"cell-{y}-{x}")
                if links and links[y]:
                    cell.set_url(links[y])
                axes.add_patch(cell)
        # At least one row and column of room: an empty grid is no error (equal limits are).
        axes.set_xlim(-0.5, max(len(columns), 1) - 0.5)
        axes.set_ylim(max(len(rows), 1) - 0.5, -0.5)
        axes.set_xticks(range(len(columns)), labels=list(columns), rotation=45, ha="right")
        axes.set_yticks(range(len(rows)), labels=list(rows), fontsize=8)
        if links:
            for label, link in zip(axes.get_yticklabels(), links, strict=True):
                label.set_url(link)
        axes.tick_params(length=0)
        for side in axes.spines.values():
            side.set_visible(False)
        axes.set_title(title)
        axes.legend(
            handles=[
                Patch(facecolor=colour, hatch=hatch, label=label)
                for label, colour, hatch in states.values()
            ],
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=8,
        )
        if not rows:
            axes.text(
                0.5, 0.5, "nothing to show", ha="center", va="center", transform=axes.transAxes
            )
        text = _svg(figure, title, description, role="group" if links else "img")
    # Matplotlib opens links in a new window; a link to a patient opens like any other.
    text = text.replace(' target="_blank"', "")
    return _CELL_LINK.sub(r'\1tabindex="-1" aria-hidden="true" ', text)


def words(counts: dict[str, float], unit: str = "") -> str:
    """A few numbers in words: "received 12, missing 3" (zeros left out)."""
    said = [f"{name} {value:g}{unit}" for name, value in counts.items() if value]
    return ", ".join(said) if said else "none"
