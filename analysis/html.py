"""The report as one self-contained HTML page: tables, figures embedded as data URIs, links to MLflow.

Nothing on the page loads from elsewhere (no scripts, fonts or stylesheets; images are
``data:image/png;base64`` URIs), so ``index.html`` can be mailed, archived or opened offline.
Links to the MLflow UI are plain anchors, shown only when a UI address is known.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

from analysis.tables import Acc, Gain, Table, format_cell

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; } th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 13px; } figure { display: inline-block; margin: .5em 1em .5em 0; }
img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 12px; color: #555; }
details { margin: .5em 0; } pre { background: #f7f7f7; padding: .6em; overflow-x: auto; }
"""


def run_link(ui: str | None, experiment_id: str | None, run_id: str) -> str | None:
    """The run's page in the MLflow UI at ``ui`` (None without a UI address)."""
    if not ui or not experiment_id:
        return None
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def default_ui(tracking_uri: str) -> str | None:
    """The tracking URI when it is an http(s) server (its UI is there); otherwise no links."""
    return tracking_uri if tracking_uri.startswith(("http://", "https://")) else None


def table_html(table: Table, links: list[str | None] | None = None, link_column: int = 0) -> str:
    """``table`` as HTML; ``links[i]`` (when given) turns row ``i``'s cell in ``link_column`` into a link."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in table.headers)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, cell in enumerate(row):
            text = e(format_cell(cell))
            if j == link_column and links and links[i]:
                text = f'<a href="{e(links[i])}">{text}</a>'
            numeric = isinstance(cell, (int, float, Acc, Gain)) and not isinstance(cell, bool)
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="note">{e(table.note)}</p>' if table.note else ""
    return (f'<h2 id="{e(table.slug)}">{e(table.title)}</h2>{note}'
            f'<table data-table="{e(table.slug)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')  # fmt: skip


def image_html(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = html.escape(Path(path).stem)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def config_html(title: str, params: dict[str, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in sorted(params.items()))
    return f"<details><summary>{html.escape(title)}</summary><table><tbody>{rows}</tbody></table></details>"


def write_html(report, out: Path, tracking_uri: str, ui: str | None, experiment_id: str | None,
               sweep_config: tuple[str | None, dict] = (None, {})) -> Path:  # fmt: skip
    """Write ``out/index.html`` for ``report`` (an :class:`analysis.report.Report`); returns its path."""
    e = html.escape
    title = f"Sweep {report.sweep}" if report.sweep else f"Experiment {report.experiment}"
    statuses: dict[str, int] = {}
    for t in report.trials:
        statuses[t.status] = statuses.get(t.status, 0) + 1
    parts = [
        f"<h1>{e(title)}</h1>",
        f'<p class="note">MLflow experiment <b>{e(report.experiment)}</b> at <code>{e(tracking_uri)}</code>; '
        f"{len(report.trials)} trials ({e(', '.join(f'{n} {s}' for s, n in statuses.items()))}); eval sets: "
        f"{e(', '.join(report.sets) or 'none')}; swept keys: {e(', '.join(report.swept) or 'none')}. "
        f"Best run per family by its best epoch of {e(report.metric)} ({e(report.mode)}). "
        f"Generated {e(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}. A dash: the run logged no such metric "
        "(a trial stopped early is never tested).</p>",
    ]  # fmt: skip
    links_by_name = {t.name: run_link(ui, experiment_id, t.run_id) for t in report.trials}
    for slug, table in report.tables.items():
        column = {"trials": 0, "models": 3}.get(slug)  # the column holding the run's name
        links = [links_by_name.get(row[column]) for row in table.rows] if column is not None else None
        parts.append(table_html(table, links, column or 0))
    parts.append('<h2 id="figures">Figures</h2>')
    parts += [image_html(p) for p in report.figures]
    parts.append('<h2 id="configuration">Configuration</h2>')
    parent_id, params = sweep_config
    if params:
        parts.append(config_html(f"sweep {report.sweep} (parent run {parent_id})", params))
    for family, t in report.best.items():
        link = links_by_name.get(t.name)
        parts.append(config_html(f"best {family} run {t.name} ({t.run_id})" + (f" - {link}" if link else ""), t.params))
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")  # fmt: skip
    path = Path(out) / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
