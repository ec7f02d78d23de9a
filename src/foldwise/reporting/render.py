"""Rendering report sections: report.md (GitHub markdown) and report.html (one self-contained file)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    """One report section: paragraphs (light markdown), an optional table and optional plots (PNG file names)."""

    title: str
    text: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list]] | None = None
    images: list[str] = field(default_factory=list)


def render_markdown(sections: list[Section], title: str) -> str:
    """report.md: sections with GitHub tables and image links."""
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""] + [t + "\n" for t in s.text]
        if s.table:
            header, body = s.table
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body] + [""]
        lines += [f"![{name}]({name})\n" for name in s.images]
    return "\n".join(lines)


def inline_html(text: str) -> str:
    """Escape, then the two bits of markdown the report uses inline: `code` and **bold**; fenced blocks as <pre>."""
    if text.startswith("```"):
        return "<pre>" + html.escape(text.strip("`").strip()) + "</pre>"
    out = html.escape(text)
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("**")
    return "<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"


def render_html(sections: list[Section], title: str, image_dir: Path) -> str:
    """report.html: one file, plots embedded as base64 PNG."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [inline_html(t) for t in s.text]
        if s.table:
            header, rows = s.table
            body.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
            body += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            body.append("</table>")
        for name in s.images:
            data = base64.b64encode((image_dir / name).read_bytes()).decode()
            body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px}"
        "img{max-width:100%}pre{background:#f4f4f4;padding:8px;font-size:85%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
