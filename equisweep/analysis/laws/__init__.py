"""Law forms of L(N, S), one module each; a new form is one module and one line below.

from equisweep.analysis.laws import FORMS, get
get("kaplan").predict(theta, N, S)
"""

from __future__ import annotations

from equisweep.analysis.laws import additive, kaplan, kaplan_e
from equisweep.analysis.laws.base import LawForm

FORMS: dict[str, LawForm] = {
    additive.FORM.name: additive.FORM,
    kaplan.FORM.name: kaplan.FORM,
    kaplan_e.FORM.name: kaplan_e.FORM,
}


def get(name: str) -> LawForm:
    """The form called `name`; a UserError naming the known ones otherwise."""
    if name not in FORMS:
        from equisweep.errors import UserError

        raise UserError(f"--form {name!r}: unknown law form (known: {', '.join(FORMS)})")
    return FORMS[name]
