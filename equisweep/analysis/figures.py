"""The report's plotly figures. Every loss figure draws the zero-parameter baselines as
horizontal lines and the fitted points with their standard errors; a fitted line (frontier,
envelope, L(D), allocation) is drawn only from an ok or weak fit — for an undetermined one the
figure shows the data and says "not determined" on the plot."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from equisweep.analysis import validity
from equisweep.analysis.data import SweepData
from equisweep.analysis.sections import best_per_d

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
BASELINE_STYLE = {"constant_velocity": "dash", "copy_last": "dot", "ballistic": "longdash"}


def _rgba(hex_color, alpha):
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def colors(fits):
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


def loss_range(data: SweepData, points) -> list[float] | None:
    """log10 y-range of a loss figure: the measured points and the baselines, with a margin.
    Set explicitly so that a fitted band (a weak fit's can span decades) never sets it."""
    v = np.concatenate([np.asarray(points["loss"], dtype=float),
                        np.asarray(data.baselines["loss"], dtype=float)])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return None
    return [float(np.log10(v.min() / 1.6)), float(np.log10(v.max() * 1.6))]


def _log_axes(fig, xt, yt, **kw):
    fig.update_xaxes(type="log", title_text=xt, **kw)
    fig.update_yaxes(type="log", title_text=yt, **kw)


def _fit_name(name, block):
    return name + (" (weak fit)" if block.get("status") == "weak" else "")


def add_baselines(fig, data: SweepData, split: str, x_range, subplots=((None, None),),
                  legend=True):
    """A horizontal line per zero-parameter baseline of `split` (the other split if only
    that one was recorded) across x_range, named with its value and standard error.

    Drawn as line traces rather than layout shapes: plotly places a shape's label in the
    axis' log coordinates on a log axis, which misplaces it and stretches the axis."""
    b = data.baselines
    lo_hi = [float(v) for v in x_range if np.isfinite(v) and v > 0]
    if b.empty or not lo_hi:
        return 0
    lo, hi = min(lo_hi) / 1.5, max(lo_hi) * 1.5
    rows = b[b["split"] == split]
    if rows.empty:
        rows = b
    n = 0
    for _, r in rows.iterrows():
        se = f" ± {r['loss_se']:.2g}" if np.isfinite(r["loss_se"]) else ""
        name = f"{r['baseline'].replace('_', ' ')} ({r['split']}): {r['loss']:.3g}{se}"
        for i, (row, col) in enumerate(subplots):
            fig.add_trace(go.Scatter(
                x=[lo, hi], y=[float(r["loss"])] * 2, mode="lines", name=name,
                legendgroup=f"baseline-{r['baseline']}", showlegend=legend and i == 0,
                line={"color": "#555", "width": 1.5,
                      "dash": BASELINE_STYLE.get(r["baseline"], "dashdot")},
                hovertemplate=f"{name}<extra>zero-parameter baseline</extra>"), row, col)
        n += 1
    return n


def _note(fig, text, **kw):
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.01, y=0.02, showarrow=False,
                       align="left", font={"color": "#a33", "size": 12}, bgcolor="#fff8f8",
                       bordercolor="#a33", **kw)


def _points(sel, x, color, name, group, unit, showlegend=True):
    """Trial markers with the test-loss standard error as error bars and hover details."""
    se = sel["loss_se"].to_numpy(float)
    cd = np.stack([sel["key"], sel["N"], sel["S"], sel["D"], sel["lr"], sel["C"],
                   np.where(np.isfinite(se), se, np.nan), sel["loss_kind"], sel["size"]],
                  axis=1)
    return go.Scatter(
        x=x, y=sel["loss"], mode="markers", name=name, legendgroup=group, showlegend=showlegend,
        marker={"color": color, "size": 7, "opacity": 0.8},
        error_y={"type": "data", "array": np.where(np.isfinite(se), se, 0).tolist(),
                 "visible": bool(np.isfinite(se).any()), "thickness": 1, "width": 2},
        customdata=cd,
        hovertemplate="trial %{customdata[0]}<br>%{customdata[7]} loss=%{y:.4g} "
                      "± %{customdata[6]:.2g}<br>size %{customdata[8]}: "
                      "N=%{customdata[1]:.3g} params, "
                      "steps=%{customdata[2]}<br>trajectories=%{customdata[3]}, "
                      "lr=%{customdata[4]:.3g}<br>C=%{customdata[5]:.3g} " + unit
                      + "<extra>" + name + "</extra>")


def fig_compute(data: SweepData, fits: dict, points) -> go.Figure:
    """Figure 1 of the study: test loss vs training compute, one dot per fitted point, the
    compute-optimal frontier L*(C) with its bootstrap band, and the Approach 1 envelope fit."""
    fig = go.Figure()
    col, unit = colors(fits), data.compute_unit
    missing = []
    for v, info in fits["variants"].items():
        sel = points[points["variant"] == v]
        fig.add_trace(_points(sel, sel["C"], col[v], f"{v} points", v, unit))
        a3, a1 = info["approach3"], info["approach1"]
        if validity.usable(a3):
            for t in _band_traces(a3["frontier"]["C"], a3["frontier"]["L_opt"], col[v],
                                  _fit_name(f"{v} compute-optimal L*(C)", a3), v):
                fig.add_trace(t)
        else:
            missing.append(f"{v}: frontier not determined")
        if validity.usable(a1) and "curve" in a1:
            for t in _band_traces(a1["curve"]["C"], a1["curve"]["L"], col[v],
                                  _fit_name(f"{v} envelope fit (approach 1)", a1), v,
                                  dash="dot"):
                fig.add_trace(t)
    add_baselines(fig, data, "test", points["C"])
    if missing:
        _note(fig, "<br>".join(missing) + " (data shown without a line)")
    _log_axes(fig, f"training compute C [{unit}]", "test loss")
    fig.update_yaxes(range=loss_range(data, points))
    fig.update_layout(title="Loss vs compute: tuned points, compute-optimal frontier, 95% band")
    return fig


def fig_data(data: SweepData, fits: dict, points) -> go.Figure:
    """Figure 2: test loss vs training trajectories and vs epochs, per variant."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("vs train trajectories", "vs epochs"))
    col, unit = colors(fits), data.compute_unit
    missing = []
    for v, info in fits["variants"].items():
        sel = points[points["variant"] == v]
        # the fit's points (one N and S: a fixed compute) joined by a line; the variant's
        # other points faded, as they differ in compute as well as in D
        axis = best_per_d(sel)
        rest = sel[~sel["key"].isin(axis["key"])]
        for x_col, c in (("D", 1), ("epochs", 2)):
            if len(axis):
                n, s_ = axis["N"].iloc[0], axis["S"].iloc[0]
                t = _points(axis, axis[x_col], col[v], f"{v} at fixed compute (N={n:.3g}, "
                            f"S={s_:.3g})", v, unit, showlegend=c == 1)
                fig.add_trace(t.update(mode="lines+markers", line={"width": 1}), 1, c)
            if len(rest):
                t = _points(rest, rest[x_col], col[v], f"{v} other sizes and lengths", v, unit,
                            showlegend=c == 1)
                fig.add_trace(t.update(marker={"opacity": 0.2}), 1, c)
        de = info["data_efficiency"]
        if validity.usable(de) and "curve" in de:
            for t in _band_traces(de["curve"]["D"], de["curve"]["L"], col[v],
                                  _fit_name(f"{v} L(D) fit", de), v):
                fig.add_trace(t, 1, 1)
        else:
            missing.append(f"{v}: L(D) not determined")
    add_baselines(fig, data, "test", points["D"], subplots=((1, 1),))
    add_baselines(fig, data, "test", points["epochs"], subplots=((1, 2),), legend=False)
    if missing:
        _note(fig, "<br>".join(missing))
    _log_axes(fig, None, "test loss")
    fig.update_yaxes(range=loss_range(data, points))
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
            if p["coef"] is not None and validity.usable(a2):
                fn = p.get("fit_N") or p["N"]
                u = np.linspace(np.log(min(fn)), np.log(max(fn)), 40)
                c2, c1, c0 = p["coef"]
                fig.add_trace(go.Scatter(x=np.exp(u), y=c2 * u * u + c1 * u + c0, mode="lines",
                                         line={"color": color}, legendgroup=name,
                                         showlegend=False, hoverinfo="skip"), 1, j)
    bad = [f"{v}: IsoFLOP {fits['variants'][v]['approach2']['status']}" for v in names
           if not validity.usable(fits["variants"][v]["approach2"])]
    if bad:
        _note(fig, "<br>".join(bad) + " (profiles shown without parabolas)")
    fig.update_xaxes(type="log", title_text="N (parameters)")
    fig.update_yaxes(title_text="val loss at C")
    fig.update_layout(title="IsoFLOP profiles (approach 2)")
    return fig


def fig_allocation(fits: dict) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("N_opt(C)", "S_opt(C)"))
    col, unit = colors(fits), fits["compute"]["unit"]
    missing = []
    for v, info in fits["variants"].items():
        a3 = info["approach3"]
        if validity.usable(a3):
            fr = a3["frontier"]
            for t in _band_traces(fr["C"], fr["N_opt"], col[v],
                                  _fit_name(f"{v} N_opt (approach 3)", a3), v):
                fig.add_trace(t, 1, 1)
            for t in _band_traces(fr["C"], fr["S_opt"], col[v], f"{v} S_opt", v,
                                  showlegend=False):
                fig.add_trace(t, 1, 2)
        else:
            missing.append(f"{v}: allocation not determined (Approach 3 {a3['status']})")
        a2 = info["approach2"]
        if validity.usable(a2):
            C = [p["C"] for p in a2["profiles"]]
            fig.add_trace(go.Scatter(x=C, y=a2["N_opt_measured"], mode="markers",
                                     name=f"{v} N_opt (IsoFLOP minima)", legendgroup=v,
                                     marker={"color": col[v], "symbol": "diamond"}), 1, 1)
    if missing:
        _note(fig, "<br>".join(missing))
        if len(missing) == len(fits["variants"]):
            fig.update_layout(meta={"height": 300})  # nothing to draw: a short panel
    _log_axes(fig, f"training compute C [{unit}]", None)
    fig.update_yaxes(title_text="parameters", row=1, col=1)
    fig.update_yaxes(title_text="training steps", row=1, col=2)
    fig.update_layout(title="Compute-optimal allocation")
    return fig


def fig_curves(data: SweepData, fits: dict) -> go.Figure:
    """Per-trial validation curves (every finished trial, not only the tuned points)."""
    fig = go.Figure()
    col = colors(fits)
    cv, info = data.curves, data.final.set_index("key")
    seen = set()
    for key, g in cv.groupby("key", sort=False):
        v = g["variant"].iloc[0]
        y = g["val_loss"].where(np.isfinite(g["val_loss"]), g["train_loss"])
        t = info.loc[key]
        fig.add_trace(go.Scatter(
            x=g["C"], y=y, mode="lines", name=v, legendgroup=v, showlegend=v not in seen,
            opacity=0.55, line={"color": col.get(v, "#444"), "width": 1},
            hovertemplate=f"trial {key}<br>N={t['N']:.3g}, steps={t['S']:g}, "
                          f"lr={t['lr']:.3g}<br>C=%{{x:.3g}}<br>val loss=%{{y:.4g}}"
                          f"<extra>{v}</extra>"))
        seen.add(v)
    add_baselines(fig, data, "val", cv["C"] if len(cv) else [])
    _log_axes(fig, f"cumulative compute [{data.compute_unit}]", "validation loss")
    fig.update_layout(title="Training curves" + ("" if len(cv) else " (no curves recorded)"))
    return fig


def fig_equivariance(data: SweepData, fits: dict) -> go.Figure:
    """Learned equivariance: equivariance_error vs steps of the non-equivariant variants
    (with and without augmentation), one line per trial."""
    fig = go.Figure()
    col = colors(fits)
    eq = {v for v, i in fits["variants"].items() if i.get("equivariant") is True}
    cv = data.curves[np.isfinite(data.curves["equivariance_error"])
                     & ~data.curves["variant"].isin(eq)]
    seen = set()
    for key, g in cv.groupby("key", sort=False):
        v = g["variant"].iloc[0]
        aug = fits["variants"].get(v, {}).get("augment")
        fig.add_trace(go.Scatter(
            x=g["step"], y=g["equivariance_error"], mode="lines+markers", name=v,
            legendgroup=v, showlegend=v not in seen, opacity=0.6, marker={"size": 4},
            line={"color": col.get(v, "#444"), "width": 1, "dash": None if aug else "dot"},
            hovertemplate=f"trial {key}<br>step=%{{x}}<br>equivariance error=%{{y:.3g}}"
                          f"<extra>{v}</extra>"))
        seen.add(v)
    if cv.empty:
        _note(fig, "no equivariance_error recorded for a non-equivariant variant")
    _log_axes(fig, "training step", "equivariance error")
    fig.update_xaxes(type="linear")
    fig.update_layout(title="Learned equivariance of the non-equivariant variants "
                            "(solid: with augmentation, dotted: without)")
    return fig


def figures(data: SweepData, fits: dict, points) -> dict[str, go.Figure]:
    return {
        "loss_vs_compute": fig_compute(data, fits, points),
        "loss_vs_data": fig_data(data, fits, points),
        "allocation": fig_allocation(fits),
        "isoflop": fig_isoflop(fits),
        "training_curves": fig_curves(data, fits),
        "equivariance": fig_equivariance(data, fits),
    }
