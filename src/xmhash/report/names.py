"""How the outputs name methods: one table of display names, and the reproduced papers'.

Light on purpose (no pandas, no matplotlib): the workflow reads it when it loads.
"""

from __future__ import annotations

# How tables, plots and the report spell each registered method (config keys elsewhere).
DISPLAY_NAMES = {
    "lsh": "LSH",
    "cca_itq": "CCA-ITQ",
    "djsrh": "DJSRH",
    "jdsh": "JDSH",
    "dgcpn": "DGCPN",
    "ucch": "UCCH",
    "ucmfh": "UCMFH",
    "cirh": "CIRH",
    "daeh": "DAEH",
    "vtmuch": "VTM-UCH",
    "enhash": "ENHash",
    "rshnl": "RSHNL",
    "ce_centre": "CE-centre",
    "gce_centre": "GCE-centre",
    "dcmh_feat": "DCMH (features)",
}
# The methods of the papers xmhash reproduces; plots draw them salient and say so.
PAPER_METHODS = ("vtmuch", "enhash", "rshnl")


def display_name(method: str) -> str:
    """``vtmuch`` -> ``VTM-UCH``; a variant key ``enhash_nonotebook`` -> ``ENHash
    (nonotebook)``; any other key as it is."""
    if method in DISPLAY_NAMES:
        return DISPLAY_NAMES[method]
    for key in sorted(DISPLAY_NAMES, key=len, reverse=True):
        if method.startswith(key + "_"):
            return f"{DISPLAY_NAMES[key]} ({method.removeprefix(key + '_')})"
    return method


def example_method(methods: list[str]) -> str:
    """The method of the qualitative retrieval figure: the first of ``methods`` that comes
    from a reproduced paper, else the first."""
    return next((m for m in methods if m in PAPER_METHODS), methods[0])
