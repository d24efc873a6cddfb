"""House rules: analysis never imports torch; the CLI modules import only stdlib at top."""

from __future__ import annotations

import subprocess
import sys


def test_cli_modules_are_light_and_analysis_never_imports_torch():
    code = (
        "import sys\n"
        "import equisweep.analysis.cli_fit, equisweep.analysis.cli_analyze\n"
        "heavy = {'numpy', 'pandas', 'scipy', 'plotly', 'pyarrow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "import equisweep.analysis.analyze, equisweep.analysis.report\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
