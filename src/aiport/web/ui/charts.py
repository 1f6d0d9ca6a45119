"""Charts as inline SVG, drawn on the server: no chart library, nothing to download, and
each chart carries a text label for screen readers. Labels are escaped like any text."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

Fmt = Callable[[float], str]
PALETTE = ("#3056d3", "#1e8e3e", "#b26a00", "#8e44ad", "#c0392b", "#16a085", "#2c3e50", "#d35400")


def number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def dollars(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _svg(width: int, height: int, label: str, body: str) -> Markup:
    return Markup(
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>{body}</svg>'
    )


def columns(points: Sequence[tuple[str, float]], label: str, fmt: Fmt = number, color: str = PALETTE[0]) -> Markup:
    """Vertical bars over time (one per bucket), with a value axis and thinned x labels."""
    width, height, left, bottom, top = 560, 220, 48, 28, 12
    if not points:
        return _svg(width, 60, label, '<text x="10" y="30">—</text>')
    peak = max(v for _, v in points) or 1.0
    plot_w, plot_h = width - left - 8, height - bottom - top
    step = plot_w / len(points)
    bar = min(max(step * 0.7, 1.0), 48.0)
    parts = []
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(peak * i / 4))}</text>')
    every = max(1, len(points) // 8)
    for i, (key, value) in enumerate(points):
        x = left + i * step + (step - bar) / 2
        h = plot_h * value / peak
        y = top + plot_h - h
        tip = f"{key}: {fmt(value)}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}" rx="2">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if i % every == 0:
            short = key[5:] if len(key) >= 10 else key  # MM-DD or MM-DDTHH:00
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 10}" text-anchor="middle">{escape(short.replace("T", " "))}</text>'
            )
    return _svg(width, height, label, "".join(parts))


def line(
    points: Sequence[tuple[str, float]],
    label: str,
    fmt: Fmt = number,
    color: str = PALETTE[1],
    peak: float | None = None,
) -> Markup:
    """A line with dots (rates and money read better as a line); rates pass peak=1."""
    width, height, left, bottom, top = 560, 220, 56, 28, 12
    if not points:
        return _svg(width, 60, label, '<text x="10" y="30">—</text>')
    peak = peak or max(v for _, v in points) or 1.0
    plot_w, plot_h = width - left - 12, height - bottom - top
    step = plot_w / max(len(points) - 1, 1)
    coords = [(left + i * step, top + plot_h - plot_h * v / peak) for i, (_, v) in enumerate(points)]
    parts = []
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(peak * i / 4))}</text>')
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
    every = max(1, len(points) // 8)
    for i, ((key, value), (x, y)) in enumerate(zip(points, coords, strict=True)):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(f"{key}: {fmt(value)}")}</title></circle>'
        )
        if i % every == 0:
            short = key[5:] if len(key) >= 10 else key
            parts.append(
                f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">{escape(short.replace("T", " "))}</text>'
            )
    return _svg(width, height, label, "".join(parts))


def bars(items: Sequence[tuple[str, float]], label: str, fmt: Fmt = number) -> Markup:
    """Horizontal bars for a breakdown (by team, app, user, model), largest first."""
    row, width, name_w = 26, 560, 170
    if not items:
        return _svg(width, 40, label, '<text x="10" y="24">—</text>')
    peak = max(v for _, v in items) or 1.0
    parts = []
    for i, (name, value) in enumerate(items):
        y = i * row + 4
        w = (width - name_w - 80) * value / peak
        short = name if len(name) <= 24 else name[:23] + "…"
        parts.append(f'<text x="{name_w - 8}" y="{y + 15}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect x="{name_w}" y="{y}" width="{max(w, 1):.1f}" height="{row - 8}" rx="3" fill="{PALETTE[i % len(PALETTE)]}"/>'
        )
        parts.append(f'<text x="{name_w + w + 6:.1f}" y="{y + 15}">{escape(fmt(value))}</text>')
    return _svg(width, len(items) * row + 6, label, "".join(parts))
