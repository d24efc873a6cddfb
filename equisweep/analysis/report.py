"""report.html: one self-contained page (one embedded plotly.js, works offline) that opens
with the answers to the study's three questions, then the figures (figures.py), every fit
with its status and reasons, the comparisons, and the provenance of the numbers."""

from __future__ import annotations

import html
import importlib.util
import json

from equisweep.analysis import figures as figs_mod
from equisweep.analysis import grid_edge, tuned, validity, verdict
from equisweep.analysis.data import SweepData


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


def _status_html(s) -> str:
    st = s.get("status", "undetermined")
    return f"<span class='status {st}'>{html.escape(st)}</span>"


def _diag_html(s) -> str:
    diags = s.get("diagnostics") or []
    if not diags:
        return ""
    return "<ul class='diag'>" + "".join(
        f"<li>{html.escape(d['severity'])}: {html.escape(d['message'])}</li>"
        for d in diags) + "</ul>"


def _section_html(title, s):
    h = f"<h4>{html.escape(title)} {_status_html(s)}</h4>{_diag_html(s)}"
    if "coefficients" not in s and "a" not in s:
        return h
    if not validity.usable(s):
        h += ("<p class='warn'>not determined: the coefficients below are what the optimiser "
              "returned, not a result; nothing is derived from them.</p>")
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
    return out + _forms_html(s)


def _forms_html(s) -> str:
    """Approach 3: every law form with its held-out errors; the primary one marked."""
    forms = s.get("forms")
    if not forms:
        return ""
    e = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    rows = "".join(
        f"<tr><td style='text-align:left'>{'<b>' if k == s['primary_form'] else ''}"
        f"{html.escape(k)}{' (primary)</b>' if k == s['primary_form'] else ''}</td>"
        f"<td style='text-align:left'><code>{html.escape(f['form'])}</code></td>"
        f"<td>{f['n_params']}</td><td>{e(f['held_out']['longest_length']['error'])}</td>"
        f"<td>{e(f['held_out']['interior_sizes']['error'])}</td>"
        f"<td>{e(f['held_out']['error'])}</td><td>{_status_html(f)}</td></tr>"
        for k, f in forms.items())
    notes = "".join(f"<li>note: {html.escape(n)}</li>" for n in s.get("notes") or [])
    return ("<p class='small'>Law forms judged on runs they were not fitted to (mean |log "
            "error|: the longest length predicted from the shorter ones; each interior size "
            "from the other sizes). " + html.escape(s["selection"]["rule"]) + "; here: "
            + html.escape(s["selection"]["why"]) + ". " + html.escape(s.get("resampling", ""))
            + ".</p><table><tr><th>form</th><th>law</th><th>parameters</th>"
            "<th>longest length</th><th>interior sizes</th><th>held-out error</th>"
            f"<th>status</th></tr>{rows}</table>" + (f"<ul class='diag'>{notes}</ul>"
                                                     if notes else ""))


def costs_html(fits: dict) -> str:
    """Question 2 measured under every cost convention, one table (costs.py)."""
    block = fits.get("cost_conventions")
    if not block:
        return ""
    rows = []
    for info in block["conventions"].values():
        label = html.escape(info["label"])
        if info["status"] == "not available":
            rows.append(f"<tr><td style='text-align:left'>{label}</td><td colspan='3' "
                        f"style='text-align:left' class='warn'>not available: "
                        f"{html.escape(info['reason'])}</td></tr>")
            continue
        for p in info["pairs"]:
            pair = html.escape(" vs ".join(p["pair"]))
            if not p["budgets"]:
                rows.append(f"<tr><td style='text-align:left'>{label}</td><td>{pair}</td>"
                            f"<td colspan='2'>{html.escape(p.get('why', '-'))}</td></tr>")
            for r in p["budgets"]:
                rows.append(f"<tr><td style='text-align:left'>{label}</td><td>{pair}</td>"
                            f"<td>≤ {r['C']:.3g} {html.escape(info['unit'])}</td>"
                            f"<td style='text-align:left'>{html.escape(r['text'])}</td></tr>")
    return ("<h2 id='costs'>Loss at equal cost, under every cost convention</h2>"
            f"<p class='small'>{html.escape(block['rule'])}; intervals "
            f"{html.escape(block['interval'])}.</p><table><tr><th>cost</th><th>pair</th>"
            f"<th>budget</th><th>measured</th></tr>{''.join(rows)}</table>"
            + _per_parameter_html(block.get("per_parameter")))


def _per_parameter_html(per: dict | None) -> str:
    """What one parameter seeing one training scene costs per variant, per convention."""
    if not per:
        return ""

    def cell(v, unit):
        return "–" if v is None else f"{v:.3g}{unit}"

    rows = "".join(
        f"<tr><td style='text-align:left'>{html.escape(v)}</td>"
        f"<td>{cell(c.get('counted'), '')}</td><td>{cell(c.get('nominal'), '')}</td>"
        f"<td>6</td><td>{cell(c.get('wall'), ' s')}</td></tr>" for v, c in per.items())
    return ("<p class='small'>Cost of one parameter seeing one training scene (median over "
            "the points above): FLOPs as counted, GATr v1.4 nominal FLOPs (every scene at "
            "the dataset's largest token count), 6·N·samples, wall-clock.</p><table><tr>"
            "<th>variant</th><th>counted</th><th>nominal</th><th>6·N·samples</th>"
            f"<th>wall-clock</th></tr>{rows}</table>")


def grid_edge_html(fits: dict) -> str:
    """The tuned points that took the edge of their search range (tuning honesty)."""
    pts = fits["points"]
    ge = pts.get("grid_edge")
    if not ge:
        return ""
    flagged = [c for c in pts["cells"] if c.get("at_grid_edge")]
    head = (f"<h2 id='grid-edge'>Tuning range</h2><p>{ge['n_at_edge']} of {ge['n_cells']} "
            f"cells' tuned points sit at the edge of the range their search tried ("
            + ", ".join(f"{html.escape(v)}: {b['at_edge']} of {b['n_cells']} ({b['top']} at "
                        f"the top, {b['bottom']} at the bottom)"
                        for v, b in ge["by_variant"].items())
            + "): their optimum may lie outside it.</p>")
    if not flagged:
        return head
    rows = "".join(
        f"<tr><td>{html.escape(c['variant'])}</td><td style='text-align:left'>"
        f"{html.escape(str(c['cell'].get('size')))}</td><td>{c['cell'].get('S')}</td>"
        f"<td>{c['cell'].get('D')}</td><td style='text-align:left'>"
        f"{html.escape(grid_edge.text(c['at_grid_edge']))}</td></tr>" for c in flagged)
    return (head + "<details><summary>the flagged cells</summary><table><tr><th>variant</th>"
            "<th>size</th><th>steps</th><th>trajectories</th><th>at the edge</th></tr>"
            f"{rows}</table></details>")


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}.warn{color:#a33}.small{font-size:90%;color:#555}.fig{margin:1em 0}
#verdict{border:2px solid #345;border-radius:6px;padding:.5em 1.2em;background:#f7f9fc}
#verdict li{margin:.5em 0}.q{font-weight:600}.status{font-size:80%;padding:1px 6px;
border-radius:4px;color:#fff}.status.ok{background:#2a7}.status.weak{background:#c80}
.status.undetermined,.status.nd{background:#a33}ul.diag{font-size:90%;color:#633;margin:0}
pre{background:#f4f4f4;padding:.5em;overflow:auto;font-size:85%}"""


def verdict_html(fits: dict) -> str:
    v = fits["verdict"]
    items = []
    for q in v["questions"]:
        cls = "ok" if q["status"] == "answered" else "nd"
        items.append(f"<li><span class='q'>{html.escape(q['question'])}</span> "
                     f"<span class='status {cls}'>{html.escape(q['status'])}</span><br>"
                     f"{html.escape(q['answer'])}</li>")
    prog = fits.get("progress") or {}
    running = (f"<p class='warn'><b>{html.escape(prog['statement'])}.</b></p>"
               if prog.get("running") else "")
    out = ("<section id='verdict'><h2>Answers</h2>" + running + "<ol>" + "".join(items)
           + "</ol>")
    if v.get("baselines"):
        out += f"<p>{html.escape(v['baselines'])}</p>"
    else:
        out += ("<p class='warn'>No zero-parameter baselines in this store: losses cannot be "
                "read against copy-last-frame / constant-velocity extrapolation.</p>")
    pts = fits["points"]
    out += (f"<p class='small'>Fitted points: {html.escape(pts['rule'])} ({pts['n_points']} "
            f"points from {fits['n_trials']} finished trials). Intervals are "
            f"{int(fits['ci_level'] * 100)}%: bootstrap percentile intervals for fits "
            f"({fits['bootstrap']} resamples, seed {fits['seed']}, clustered by WSD trunk), "
            "standard errors of the stored test losses for measured ratios.</p>")
    if fits.get("run_noise"):
        out += f"<p class='small'>{html.escape(fits['run_noise']['statement'])}.</p>"
    out += "".join(f"<p class='small'>note: {html.escape(n)}</p>"
                   for n in fits["notes"] + v["notes"])
    return out + "</section>"


def provenance_html(fits: dict, data: SweepData) -> str:
    p = fits.get("provenance", {})
    rows = [("equisweep version", p.get("equisweep_version")), ("sweep", p.get("sweep")),
            ("sweep spec", p.get("spec_source")), ("dataset key", p.get("dataset_key")),
            ("submitted", p.get("submitted_at")),
            ("data as of (newest trial end)", p.get("data_as_of")),
            ("results store", fits.get("store")),
            ("compute axis", f"{fits['compute']['kind']} [{fits['compute']['unit']}]")]
    out = "<h2 id='provenance'>Provenance</h2><table>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td style='text-align:left'>"
        f"{html.escape(str(v) if v is not None else 'not recorded')}</td></tr>"
        for k, v in rows) + "</table>"
    spec = data.provenance.get("spec")
    if spec:
        out += ("<details><summary>sweep spec as submitted</summary><pre>"
                f"{html.escape(json.dumps(spec, indent=2, sort_keys=True, default=str))}"
                "</pre></details>")
    return out


def render(data: SweepData, fits: dict, png: bool = True) -> tuple[str, dict, str]:
    """(html, {figure name: png bytes}, a line saying whether PNGs were made)."""
    points, _ = tuned.select(data.final, fits["points"]["mode"])
    figs = figs_mod.figures(data, fits, points)
    parts = {}
    first = True
    for name, fig in figs.items():
        meta = fig.layout.meta if isinstance(fig.layout.meta, dict) else {}
        fig.update_layout(template="plotly_white", height=meta.get("height", 520))
        div = fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"fig-{name}",
                          config={"displaylogo": False})
        parts[name] = f"<div class='fig'>{div}</div>"
        first = False
    body = [f"<h1>equisweep report: {html.escape(fits['sweep'])}</h1>", verdict_html(fits),
            "<h2>Figures</h2>", parts["loss_vs_compute"], parts["loss_vs_data"],
            parts["allocation"] if _any_allocation(fits) else _no_allocation_html(fits),
            costs_html(fits), grid_edge_html(fits), "<h2>Fits</h2>"]
    for v, info in fits["variants"].items():
        eq = {True: "equivariant", False: "not equivariant", None: "equivariance not recorded"}
        body.append(f"<h3>{html.escape(v)}</h3><p class='small'>{eq[info['equivariant']]}; "
                    f"{info['n_trials']} points, "
                    f"sizes {', '.join(f'{x:.3g}' for x in info['sizes'])}; "
                    "compute-per-step model: "
                    f"{html.escape(_flops_text(info['flops_model']))}</p>")
        for key, title in (("approach3", "Approach 3: L(N, S)"),
                           ("approach1", "Approach 1: compute envelope"),
                           ("approach2", "Approach 2: IsoFLOP"),
                           ("data_efficiency", "Data efficiency")):
            body.append(_section_html(title, info[key]))
    body.append("<h2>Comparisons at equal compute</h2>")
    for comp in fits["comparisons"]:
        title = (f"<h3>{html.escape(' vs '.join(comp['pair']))} {_status_html(comp)}</h3>"
                 + _diag_html(comp))
        if not validity.usable(comp):
            body.append(title + f"<p class='warn'>{html.escape(comp['not_determined'])}</p>")
            continue
        r = [x for x in comp["ratio"]["value"] if x is not None]
        span = f"{min(r):.3g} to {max(r):.3g}" if r else "undefined"
        unit = comp.get("unit", "FLOPs")
        ad = comp.get("allocation_difference")
        adt = ""
        if ad and ad.get("value") is not None:
            ci = f" [{ad['ci'][0]:.2f}, {ad['ci'][1]:.2f}]" if ad.get("ci") else ""
            adt = f" Allocation: {html.escape(ad['definition'])} = {ad['value']:.2f}{ci}."
        body.append(title + f"<p>{html.escape(comp['ratio_definition'])}: {span} over "
                    f"{comp['compute_range'][0]:.3g} to {comp['compute_range'][1]:.3g} {unit} "
                    f"({html.escape(comp['range_kind'])}). "
                    f"Crossover: {html.escape(comp['crossover']['statement'])}.{adt}</p>")
    if not fits["comparisons"]:
        body.append("<p class='warn'>No comparison: it needs two variants.</p>")
    body += ["<h2>Measurements</h2>", parts["isoflop"], parts["training_curves"],
             parts["equivariance"], provenance_html(fits, data)]
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>equisweep: {html.escape(fits['sweep'])}</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    pngs, note = {}, "PNG copies: skipped (--no-png)"
    if png:
        pngs, note = _pngs(figs)
    return page, pngs, note


def _any_allocation(fits) -> bool:
    return any(validity.usable(v["approach3"]) for v in fits["variants"].values())


def _no_allocation_html(fits) -> str:
    why = "; ".join(f"{v}: Approach 3 is {i['approach3']['status']} "
                    f"({verdict.first_reason(i['approach3'])})"
                    for v, i in fits["variants"].items())
    return ("<h3>Compute-optimal allocation</h3><p class='warn'>Not determined for any variant, "
            f"so there is no allocation to draw: {html.escape(why)}.</p>")


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
