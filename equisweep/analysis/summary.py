"""What `equisweep analyze` prints: the three answers first, then one block per variant
with each fit's status (ok / weak / undetermined) and, where it is not ok, why."""

from __future__ import annotations

import textwrap

from equisweep.analysis import validity

FITS = (("approach3", "approach 3 L(N, S)"), ("approach1", "approach 1 (envelope)"),
        ("approach2", "approach 2 (IsoFLOP)"), ("data_efficiency", "data efficiency L(D)"))


def _fmt(b):
    if not isinstance(b, dict) or b.get("value") is None:
        return "-"
    s = f"{b['value']:.4g}"
    if b.get("ci") is not None:
        s += f" [{b['ci'][0]:.3g}, {b['ci'][1]:.3g}]"
    return s


def _wrap(text, indent):
    return textwrap.fill(text, 100, initial_indent=indent,
                         subsequent_indent=" " * len(indent) + "  ")


def _fit_line(key, label, s):
    if not validity.usable(s):
        return f"{label}: {s.get('status')}: {s.get('reason')}"
    head = f"{label}: {s['status']}"
    if key == "approach3":
        c = s["coefficients"]
        head += (f", primary form {s['primary_form']}, alpha = {_fmt(c['alpha'])}, beta = "
                 f"{_fmt(c['beta'])}" + (f", E = {_fmt(c['E'])}" if "E" in c else "")
                 + f", N_opt ~ C^{_fmt(s['exponents']['N_opt ~ C^a'])}")
    elif key == "approach2":
        head += f", N_opt ~ C^a, a = {_fmt(s['a'])}"
    elif key == "approach1":
        head += f", gamma = {_fmt(s['coefficients']['gamma'])}"
    else:
        head += f", beta = {_fmt(s['coefficients']['beta'])}"
    if s["status"] == "weak":
        head += f" (weak: {s['reason']})"
    return head


def _held_out_lines(s) -> list[str]:
    """One line per law form: its held-out errors and status, the primary marked."""
    out = []
    for name, f in (s.get("forms") or {}).items():
        h = f["held_out"]
        e = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        mark = "*" if name == s.get("primary_form") else " "
        out.append(f"   {mark} {name:<9} held-out error {e(h['error'])} (longest length "
                   f"{e(h['longest_length']['error'])}, interior sizes "
                   f"{e(h['interior_sizes']['error'])}), {f['n_params']} parameters, "
                   f"{f['status']}")
    return out


def summary_table(fits: dict, files: list[str], png_note: str) -> str:
    pts = fits["points"]
    lines = [f"sweep {fits['sweep']}: {fits['n_trials']} finished trials, {pts['n_points']} "
             f"points fitted ({pts['mode']}: {pts['n_cells']} cells), {fits['bootstrap']} "
             f"bootstrap resamples (seed {fits['seed']}), compute axis: "
             f"{fits['compute']['kind']} [{fits['compute']['unit']}]"]
    notes = fits["notes"] + fits["verdict"]["notes"]
    if fits.get("run_noise"):
        notes = notes + [fits["run_noise"]["statement"]]
    for note in notes:
        lines.append(f"  note: {note}")
    lines.append("")
    for q in fits["verdict"]["questions"]:
        lines.append(_wrap(f"{q['question']}", ""))
        lines.append(_wrap(q["answer"], "  → "))
    if fits["verdict"].get("baselines"):
        lines.append(_wrap(fits["verdict"]["baselines"], ""))
    for name, v in fits["variants"].items():
        eq = {True: "equivariant", False: "not equivariant", None: "equivariance not recorded"}
        lines += ["", f"{name} ({eq[v['equivariant']]}; {v['n_trials']} points)"]
        for key, label in FITS:
            lines.append(_wrap(_fit_line(key, label, v[key]), "  "))
            if key == "approach3":
                lines += _held_out_lines(v[key])
                for n in v[key].get("notes") or []:
                    lines.append(_wrap(f"note: {n}", "    "))
    lines.append("")
    lines += [f"wrote {f}" for f in files if not f.endswith(".png")]
    lines.append(png_note)
    return "\n".join(lines)
