"""The report page: sections and figures rendered as one self-contained HTML file and Markdown.

`_Page` collects sections (id, title, html, md) and figures (saved as report_files/NAME.png and
embedded in the HTML as base64 data URIs) and writes report.html and report.md atomically. The
small renderers below return an (html, md) pair each, so every section is written once for both.
Underscored names are private to the `report` package.
"""

import base64
import html
import os

from tfplaybook.analysis import plots
from tfplaybook.files import trial_dir as td

FILES_DIR = "report_files"
# Said near the top of every report: the numbers it cites are items of the project's checklist.
CHECKLIST_NOTE = (
    'Numbers such as "checklist 43" refer to the items of docs/checklist.md in the tfplaybook '
    "repository, which says what each playbook item asks for and where tfplaybook implements "
    "it; figure ids P1-P12 refer to docs/plots.md there."
)

_CSS = """
body{font-family:sans-serif;max-width:1250px;margin:1em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.ok{background:#dff3df}.warning{background:#fde2c8;font-weight:bold}.na{background:#eee;color:#666}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}
nav a{margin-right:1em}
section{margin-bottom:2em}
pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:.8em}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) loaded++;
  }
  var ids = [];
  document.querySelectorAll("section[id]").forEach(function (s) { ids.push(s.id); });
  var marker = document.getElementById("render-check");
  marker.setAttribute("data-images-loaded", loaded);
  marker.setAttribute("data-images-total", images.length);
  marker.setAttribute("data-sections", ids.join(" "));
});
"""


def _esc(value):
    return html.escape(str(value))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class _Page:
    """Collects sections and figures; renders them as HTML and Markdown."""

    def __init__(self, out_dir, title):
        self.out_dir, self.title = out_dir, title
        self.sections, self.pngs = [], []
        os.makedirs(os.path.join(out_dir, FILES_DIR), exist_ok=True)

    def figure(self, name, figure, alt):
        """Saves a figure as report_files/NAME.png; returns (html, md) that show it."""
        data = plots.to_png(figure)
        filename = f"{name}.png"
        td.atomic_write_bytes(os.path.join(self.out_dir, FILES_DIR, filename), data)
        self.pngs.append(filename)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        link = f"{FILES_DIR}/{filename}"
        caption = f'<figcaption><a href="{link}">{_esc(filename)}</a></figcaption>'
        image = f'<figure><img src="{uri}" alt="{_esc(alt)}">{caption}</figure>'
        return image, f"![{alt}]({link})"

    def add(self, section_id, title, body_html, body_md):
        if any(s[0] == section_id for s in self.sections):
            raise ValueError(
                f"report section id {section_id!r} is used twice; ids in use: "
                f"{', '.join(s[0] for s in self.sections)}"
            )
        self.sections.append((section_id, title, body_html, body_md))

    def html(self):
        nav = " ".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title, _, _ in self.sections)
        body = "\n".join(
            f'<section id="{sid}"><h2>{_esc(title)}</h2>\n{content}\n</section>'
            for sid, title, content, _ in self.sections
        )
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_esc(self.title)}</title><style>{_CSS}</style></head>\n<body>\n"
            f"<h1>{_esc(self.title)}</h1>\n<nav>{nav}</nav>\n{body}\n"
            f'<div id="render-check" hidden></div>\n<script>{_SCRIPT}</script>\n'
            "</body></html>\n"
        )

    def markdown(self):
        parts = [f"# {self.title}\n"]
        for sid, title, _, content in self.sections:
            parts.append(f'<a id="{sid}"></a>\n\n## {title}\n\n{content}\n')
        return "\n".join(parts)

    def write(self):
        # Drop figures left over from an earlier report of the same directory.
        files_dir = os.path.join(self.out_dir, FILES_DIR)
        for name in os.listdir(files_dir):
            if name.endswith(".png") and name not in self.pngs:
                os.unlink(os.path.join(files_dir, name))
        td.atomic_write_text(os.path.join(self.out_dir, "report.md"), self.markdown())
        path = os.path.join(self.out_dir, "report.html")
        td.atomic_write_text(path, self.html())
        return path


def _table(header, rows, row_classes=None):
    """Returns (html, md) for a table of already formatted cells."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>")
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += [
        "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
        for row in rows
    ]
    return f"<table><tr>{head}</tr>{''.join(body)}</table>", "\n".join(md)


def _paragraph(text):
    return f"<p>{_esc(text)}</p>", text + "\n"


def _join(*parts):
    return "\n".join(p[0] for p in parts), "\n\n".join(p[1] for p in parts)


def _figures(page, items, empty_text, intro):
    """items: (name, figure-or-None, alt). Returns (html, md)."""
    parts = [_paragraph(intro)]
    shown = [page.figure(name, fig, alt) for name, fig, alt in items if fig is not None]
    parts.extend(shown)
    if not shown:
        parts.append(_paragraph(empty_text))
    return _join(*parts)


def _safe_name(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
