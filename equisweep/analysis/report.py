"""report.html: one self-contained page (one embedded plotly.js, works offline) with the
study's figures, the fitted coefficients and every "not enough data" message."""

from __future__ import annotations

import html
import importlib.util

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from equisweep.analysis.data import SweepData

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _rgba(hex_color, alpha):
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _colors(fits):
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(fits["variants"])}


def _band_traces(x, b, color, name, group, dash=None, showlegend=True):
    """Line for band["value"] plus a shaded band between lo and hi where present."""
    out = []
    if b.get("lo") is not None and b.get("hi") is not None:
        xs = list(x) + list(x)[::-1]
        ys = list(b["hi"]) + list(b["lo"])[::-1]
        keep = [(a, c) for a, c in zip(xs, ys) if c is not None]
        if keep:
            out.append(go.Scatter(
                x=[k[0] for k in keep], y=[k[1] for k in keep], fill="toself", mode="lines",
                line={"width": 0}, fillcolor=_rgba(color, 0.18), hoverinfo="skip",
                legendgroup=group, showlegend=False, name=f"{name} 95% band"))
    out.append(go.Scatter(x=list(x), y=b["value"], mode="lines", name=name, legendgroup=group,
                          line={"color": color, "dash": dash}, showlegend=showlegend))
    return out


def _log_axes(fig, xt, yt, **kw):
    fig.update_xaxes(type="log", title_text=xt, **kw)
    fig.update_yaxes(type="log", title_text=yt, **kw)


def fig_compute(data: SweepData, fits: dict) -> go.Figure:
    """Figure 1 of the study: test loss vs training compute, dots per trial, the
    compute-optimal frontier L*(C) with its bootstrap band, and the Approach 1 envelope fit."""
    fig = go.Figure()
    col = _colors(fits)
    for v, info in fits["variants"].items():
        sel = data.final[data.final["variant"] == v]
        fig.add_trace(go.Scatter(
            x=sel["C"], y=sel["loss"], mode="markers", name=f"{v} trials", legendgroup=v,
            marker={"color": col[v], "size": 7, "opacity": 0.75},
            customdata=np.stack([sel["N"], sel["S"], sel["D"]], axis=1),
            hovertemplate="C=%{x:.3g}<br>loss=%{y:.4g}<br>N=%{customdata[0]:.3g}"
                          "<br>steps=%{customdata[1]}<br>trajectories=%{customdata[2]}"))
        a3 = info["approach3"]
        if a3.get("status") == "ok":
            for t in _band_traces(a3["frontier"]["C"], a3["frontier"]["L_opt"], col[v],
                                  f"{v} compute-optimal L*(C)", v):
                fig.add_trace(t)
        a1 = info["approach1"]
        if a1.get("status") == "ok":
            for t in _band_traces(a1["curve"]["C"], a1["curve"]["L"], col[v],
                                  f"{v} envelope fit (approach 1)", v, dash="dot"):
                fig.add_trace(t)
    _log_axes(fig, "training compute C [FLOPs]", "test loss")
    fig.update_layout(title="Loss vs compute: trials, compute-optimal frontier and 95% band")
    return fig


def fig_data(data: SweepData, fits: dict) -> go.Figure:
    """Figure 2: test loss vs training trajectories (and vs epochs), per variant."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("vs train trajectories", "vs epochs"))
    col = _colors(fits)
    for v, info in fits["variants"].items():
        sel = data.final[data.final["variant"] == v]
        cd = np.stack([sel["N"], sel["S"], sel["epochs"]], axis=1)
        hover = ("loss=%{y:.4g}<br>N=%{customdata[0]:.3g}<br>steps=%{customdata[1]}"
                 "<br>epochs=%{customdata[2]:.3g}")
        fig.add_trace(go.Scatter(x=sel["D"], y=sel["loss"], mode="markers", name=f"{v} trials",
                                 legendgroup=v, marker={"color": col[v], "opacity": 0.6},
                                 customdata=cd, hovertemplate="D=%{x}<br>" + hover), 1, 1)
        fig.add_trace(go.Scatter(x=sel["epochs"], y=sel["loss"], mode="markers",
                                 name=f"{v} trials", legendgroup=v, showlegend=False,
                                 marker={"color": col[v], "opacity": 0.6}, customdata=cd,
                                 hovertemplate=hover), 1, 2)
        de = info["data_efficiency"]
        if de.get("status") == "ok":
            for t in _band_traces(de["curve"]["D"], de["curve"]["L"], col[v],
                                  f"{v} L(D) fit", v):
                fig.add_trace(t, 1, 1)
        elif len(sel):
            best = sel.loc[sel.groupby("D")["loss"].idxmin()].sort_values("D")
            fig.add_trace(go.Scatter(x=best["D"], y=best["loss"], mode="lines",
                                     name=f"{v} best per D", legendgroup=v,
                                     line={"color": col[v], "dash": "dash"}), 1, 1)
    _log_axes(fig, None, "test loss")
    fig.update_xaxes(title_text="train trajectories", row=1, col=1)
    fig.update_xaxes(title_text="epochs", row=1, col=2)
    fig.update_layout(title="Data efficiency: with and without augmentation")
    return fig


def fig_isoflop(fits: dict) -> go.Figure:
    names = list(fits["variants"])
    fig = make_subplots(rows=1, cols=max(1, len(names)), subplot_titles=names or ["(none)"])
    for j, v in enumerate(names, start=1):
        a2 = fits["variants"][v]["approach2"]
        profiles = a2.get("profiles") or []
        for i, p in enumerate(profiles):
            if not p["N"]:
                continue
            color = f"hsl({int(260 * i / max(1, len(profiles) - 1))},70%,45%)"
            name = f"{v} C={p['C']:.2g}"
            fig.add_trace(go.Scatter(x=p["N"], y=p["L"], mode="markers", name=name,
                                     marker={"color": color}, legendgroup=name), 1, j)
            if p["coef"] is not None:
                fn = p.get("fit_N") or p["N"]
                u = np.linspace(np.log(min(fn)), np.log(max(fn)), 40)
                c2, c1, c0 = p["coef"]
                fig.add_trace(go.Scatter(x=np.exp(u), y=c2 * u * u + c1 * u + c0, mode="lines",
                                         line={"color": color}, legendgroup=name,
                                         showlegend=False, hoverinfo="skip"), 1, j)
    fig.update_xaxes(type="log", title_text="N (parameters)")
    fig.update_yaxes(title_text="val loss at C")
    fig.update_layout(title="IsoFLOP profiles (approach 2)")
    return fig


def fig_allocation(fits: dict) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("N_opt(C)", "S_opt(C)"))
    col = _colors(fits)
    for v, info in fits["variants"].items():
        a3 = info["approach3"]
        if a3.get("status") == "ok":
            fr = a3["frontier"]
            for t in _band_traces(fr["C"], fr["N_opt"], col[v], f"{v} N_opt (approach 3)", v):
                fig.add_trace(t, 1, 1)
            for t in _band_traces(fr["C"], fr["S_opt"], col[v], f"{v} S_opt", v,
                                  showlegend=False):
                fig.add_trace(t, 1, 2)
        a2 = info["approach2"]
        if a2.get("status") == "ok":
            C = [p["C"] for p in a2["profiles"]]
            fig.add_trace(go.Scatter(x=C, y=a2["N_opt_measured"], mode="markers",
                                     name=f"{v} N_opt (IsoFLOP minima)", legendgroup=v,
                                     marker={"color": col[v], "symbol": "diamond"}), 1, 1)
    _log_axes(fig, "training compute C [FLOPs]", None)
    fig.update_yaxes(title_text="parameters", row=1, col=1)
    fig.update_yaxes(title_text="training steps", row=1, col=2)
    fig.update_layout(title="Compute-optimal allocation")
    return fig


def fig_curves(data: SweepData, fits: dict) -> go.Figure:
    fig = go.Figure()
    col = _colors(fits)
    cv = data.curves
    seen = set()
    for key, g in cv.groupby("key", sort=False):
        v = g["variant"].iloc[0]
        y = g["val_loss"].where(np.isfinite(g["val_loss"]), g["train_loss"])
        fig.add_trace(go.Scatter(x=g["C"], y=y, mode="lines", name=v, legendgroup=v,
                                 showlegend=v not in seen, opacity=0.55,
                                 line={"color": col.get(v, "#444"), "width": 1},
                                 hovertemplate=f"{key} N={g['N'].iloc[0]:.3g}"
                                               "<br>C=%{x:.3g}<br>loss=%{y:.4g}"))
        seen.add(v)
    _log_axes(fig, "cumulative compute [FLOPs]", "validation loss")
    fig.update_layout(title="Training curves" + ("" if len(cv) else " (no curves recorded)"))
    return fig


def figures(data: SweepData, fits: dict) -> dict[str, go.Figure]:
    return {
        "loss_vs_compute": fig_compute(data, fits),
        "loss_vs_data": fig_data(data, fits),
        "isoflop": fig_isoflop(fits),
        "allocation": fig_allocation(fits),
        "training_curves": fig_curves(data, fits),
    }


def _coef_rows(blocks: dict) -> str:
    rows = []
    for k, b in blocks.items():
        if not isinstance(b, dict):
            rows.append(f"<tr><td>{html.escape(k)}</td><td>{b:.4g}</td><td></td><td></td></tr>")
            continue
        v = "-" if b.get("value") is None else f"{b['value']:.5g}"
        se = "-" if b.get("se") is None else f"{b['se']:.3g}"
        ci = "-" if b.get("ci") is None else f"[{b['ci'][0]:.4g}, {b['ci'][1]:.4g}]"
        rows.append(f"<tr><td>{html.escape(k)}</td><td>{v}</td><td>{se}</td><td>{ci}</td></tr>")
    return "".join(rows)


def _section_html(title, s):
    h = f"<h4>{html.escape(title)}</h4>"
    if s.get("status") != "ok":
        return h + f"<p class='warn'>{html.escape(str(s.get('reason')))}</p>"
    out = h + f"<p><code>{html.escape(s.get('form', ''))}</code></p>"
    table = dict(s.get("coefficients", {}))
    if "exponents" in s:
        table.update(s["exponents"])
    if "a" in s:
        table["N_opt ~ C^a"] = s["a"]
    if table:
        out += ("<table><tr><th>quantity</th><th>value</th><th>s.e.</th><th>95% interval</th>"
                f"</tr>{_coef_rows(table)}</table>")
    sel = s.get("data", {}).get("selection")
    if sel:
        out += f"<p class='small'>data: {html.escape(sel)}, {s['data']['n_points']} points</p>"
    return out


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}.warn{color:#a33}.small{font-size:90%;color:#555}.fig{margin:1em 0}"""


def render(data: SweepData, fits: dict, png: bool = True) -> tuple[str, dict, str]:
    """(html, {figure name: png bytes}, a line saying whether PNGs were made)."""
    figs = figures(data, fits)
    parts = []
    first = True
    for name, fig in figs.items():
        fig.update_layout(template="plotly_white", height=520)
        div = fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"fig-{name}",
                          config={"displaylogo": False})
        parts.append(f"<div class='fig'>{div}</div>")
        first = False
    body = [f"<h1>equisweep report: {html.escape(fits['sweep'])}</h1>",
            f"<p>{fits['n_trials']} finished trials; {fits['bootstrap']} bootstrap resamples "
            f"(seed {fits['seed']}); intervals are {int(fits['ci_level'] * 100)}% percentile "
            "intervals. Full numbers in fits.json.</p>"]
    body += [f"<p class='small'>note: {html.escape(n)}</p>" for n in fits["notes"]]
    body += parts[:2]
    for v, info in fits["variants"].items():
        body.append(f"<h3>{html.escape(v)}</h3><p class='small'>{info['n_trials']} trials, "
                    f"sizes {', '.join(f'{x:.3g}' for x in info['sizes'])}; FLOPs/step model: "
                    f"{html.escape(_flops_text(info['flops_model']))}</p>")
        for key, title in (("approach3", "Approach 3: L(N, S)"),
                           ("approach1", "Approach 1: compute envelope"),
                           ("approach2", "Approach 2: IsoFLOP"),
                           ("data_efficiency", "Data efficiency")):
            body.append(_section_html(title, info[key]))
    for comp in fits["comparisons"]:
        r = [x for x in comp["ratio"]["value"] if x is not None]
        span = f"{min(r):.3g} to {max(r):.3g}" if r else "undefined"
        body.append(f"<h3>{html.escape(' vs '.join(comp['pair']))}</h3><p>"
                    f"{html.escape(comp['ratio_definition'])}: {span} over "
                    f"{comp['compute_range'][0]:.3g} to {comp['compute_range'][1]:.3g} FLOPs "
                    f"({html.escape(comp['range_kind'])}). "
                    f"Crossover: {html.escape(comp['crossover']['statement'])}.</p>")
    if not fits["comparisons"]:
        body.append("<p class='warn'>No family comparison: it needs two variants with an "
                    "Approach 3 fit.</p>")
    body += parts[2:]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>equisweep: {html.escape(fits['sweep'])}</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    pngs, note = {}, "PNG copies: skipped (--no-png)"
    if png:
        pngs, note = _pngs(figs)
    return page, pngs, note


def _flops_text(fm: dict) -> str:
    if fm["kind"] == "power":
        return (f"F(N) = {fm['k']:.3g}·N^{fm['p']:.3f} (max rel. error "
                f"{fm['max_rel_error']:.1%}, closed-form optimum)")
    return (f"log-log interpolation of {fm['n_sizes']} sizes (a power law is off by "
            f"{fm['power_fit_max_rel_error']:.1%}; numerical optimum)")


def _pngs(figs) -> tuple[dict, str]:
    if importlib.util.find_spec("kaleido") is None:
        return {}, "PNG copies: skipped (kaleido not installed: pip install 'equisweep[png]')"
    out = {}
    try:
        for name, fig in figs.items():
            out[name] = fig.to_image(format="png", width=1100, height=520)
    except Exception as err:  # noqa: BLE001 - kaleido/Chromium failures are optional output
        return {}, f"PNG copies: skipped ({type(err).__name__}: {' '.join(str(err).split())[:120]})"
    return out, f"PNG copies: {len(out)} written"
