"""The method registry: every method is one file in this package plus one line below.

Only this module maps names to classes; no other code branches on a method's name.
"""

from __future__ import annotations

from xmhash.methods.base import HashMethod
from xmhash.methods.cca_itq import CCAITQ
from xmhash.methods.ce_centre import CECentre  # noisy-label track (issue 7)
from xmhash.methods.cirh import CIRH  # ucch-family
from xmhash.methods.daeh import DAEH  # ucch-family
from xmhash.methods.dcmh_feat import DCMHFeat  # noisy-label track (issue 7)
from xmhash.methods.dgcpn import DGCPN  # djsrh-family
from xmhash.methods.djsrh import DJSRH  # djsrh-family
from xmhash.methods.enhash import ENHash  # enhash
from xmhash.methods.gce_centre import GCECentre  # noisy-label track (issue 7)
from xmhash.methods.jdsh import JDSH  # djsrh-family
from xmhash.methods.lsh import LSH
from xmhash.methods.rshnl import RSHNL  # noisy-label track (issue 7)
from xmhash.methods.ucch import UCCH  # ucch-family
from xmhash.methods.ucmfh import UCMFH  # ucch-family
from xmhash.methods.vtmuch import VTMUCH  # graph-vtmuch helper

METHODS: dict[str, type[HashMethod]] = {
    cls.name: cls
    for cls in (
        LSH,
        CCAITQ,
        ENHash,  # enhash
        RSHNL,  # noisy-label track (issue 7)
        CECentre,  # noisy-label track (issue 7)
        GCECentre,  # noisy-label track (issue 7)
        DCMHFeat,  # noisy-label track (issue 7)
        VTMUCH,  # graph-vtmuch helper
        UCCH,  # ucch-family
        UCMFH,  # ucch-family
        CIRH,  # ucch-family
        DAEH,  # ucch-family
        DJSRH,  # djsrh-family
        JDSH,  # djsrh-family
        DGCPN,  # djsrh-family
    )
}


def method_config(config: dict, dataset: str, method: str) -> dict:
    """A method's hyperparameters on one dataset: config.yaml's ``methods.<method>``,
    updated by ``method_overrides.<dataset>.<method>`` (per-dataset settings, e.g. the
    official code's values for that dataset's features)."""
    over = (config.get("method_overrides") or {}).get(dataset, {}).get(method) or {}
    return {**(config["methods"].get(method) or {}), **over}


def get_method(name: str) -> type[HashMethod]:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered methods: {sorted(METHODS)}") from None
