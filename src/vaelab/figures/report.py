"""A self-contained HTML report: sections of figures with captions and the facts behind them.

The report is a list of `Section`s, each a title, a paragraph, figure files
with captions, facts (data, epochs, seed, wall time) and links (run folders).
Anyone can `add` a section; `write` embeds every figure as base64 so the page
opens from disk with no network, and links each file beside it by name.
Text is plain (escaped) except `code`, which is set in backticks and shown
as <code>.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from vaelab.errors import VaelabError

CODE = re.compile(r"`([^`]+)`")
MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass
class Figure:
    """A figure file (relative to the report's folder) and what it shows."""

    file: str
    caption: str


@dataclass
class Section:
    title: str
    text: str
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    title: str
    intro: str
    sections: list[Section] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)

    def add(self, section: Section) -> Section:
        """Append a section (in reading order) and return it."""
        self.sections.append(section)
        return section

    def render(self, folder: str | Path) -> str:
        """The page as HTML, with figures read from `folder` and embedded."""
        template = Template(resources.files("vaelab.figures").joinpath("report.html").read_text())
        return template.substitute(
            title=html.escape(self.title),
            intro=_paragraphs(self.intro),
            facts=_facts(self.facts),
            sections="\n".join(_section(s, Path(folder)) for s in self.sections),
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to `path`; figure files are looked up beside it."""
        path = Path(path)
        path.write_text(self.render(path.parent), encoding="utf-8")
        return path


def _text(text: str) -> str:
    """`text` escaped for HTML, with `code` in backticks set as <code>."""
    return CODE.sub(r"<code>\1</code>", html.escape(text))


def _paragraphs(text: str) -> str:
    return "\n".join(f"<p>{_text(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _facts(facts: dict[str, str]) -> str:
    if not facts:
        return ""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_text(v)}</td></tr>" for k, v in facts.items()
    )
    return f'<table class="facts">{rows}</table>'


def _links(links: dict[str, str]) -> str:
    if not links:
        return ""
    items = ", ".join(
        f'<a href="{html.escape(href)}">{html.escape(label)}</a>' for label, href in links.items()
    )
    return f'<p class="links">Run folders: {items}</p>'


def _figure(figure: Figure, folder: Path) -> str:
    path = folder / figure.file
    if not path.is_file():
        raise VaelabError(f"the report's figure {path} does not exist; draw it before writing")
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise VaelabError(f"cannot embed {path}: use one of {', '.join(MIME)}")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(figure.file)
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{name}">'
        f"<figcaption>{_text(figure.caption)} "
        f'<a class="file" href="{name}">{name}</a></figcaption></figure>'
    )


def _section(section: Section, folder: Path) -> str:
    figures = "\n".join(_figure(f, folder) for f in section.figures)
    return (
        f"<section><h2>{html.escape(section.title)}</h2>{_paragraphs(section.text)}"
        f"{_facts(section.facts)}{_links(section.links)}\n{figures}</section>"
    )
