"""The method registry: every method is one file in this package plus one line below.

Only this module maps names to classes; no other code branches on a method's name.
"""

from __future__ import annotations

from xmhash.methods.base import HashMethod
from xmhash.methods.cca_itq import CCAITQ
from xmhash.methods.ce_centre import CECentre
from xmhash.methods.cirh import CIRH
from xmhash.methods.daeh import DAEH
from xmhash.methods.dcmh_feat import DCMHFeat
from xmhash.methods.dgcpn import DGCPN
from xmhash.methods.djsrh import DJSRH
from xmhash.methods.enhash import ENHash
from xmhash.methods.gce_centre import GCECentre
from xmhash.methods.jdsh import JDSH
from xmhash.methods.lsh import LSH
from xmhash.methods.rshnl import RSHNL
from xmhash.methods.ucch import UCCH
from xmhash.methods.ucmfh import UCMFH
from xmhash.methods.vtmuch import VTMUCH

METHODS: dict[str, type[HashMethod]] = {
    cls.name: cls
    for cls in (
        # closed form
        LSH,
        CCAITQ,
        # unsupervised, on cached features
        DJSRH,
        JDSH,
        DGCPN,
        UCCH,
        UCMFH,
        CIRH,
        DAEH,
        VTMUCH,
        ENHash,
        # supervised, for the noisy-label track
        RSHNL,
        CECentre,
        GCECentre,
        DCMHFeat,
    )
}


def method_config(config: dict, dataset: str, method: str) -> dict:
    """A method's hyperparameters on one dataset: config.yaml's ``methods.<method>``,
    updated by ``method_overrides.<benchmark or dataset>.<method>`` (per-dataset settings,
    e.g. the official code's values for that benchmark's features; xmhash.plan)."""
    from xmhash.plan import dataset_entry

    over = dataset_entry(config, ("method_overrides",), dataset).get(method, {})
    return {**(config["methods"].get(method) or {}), **over}


def get_method(name: str) -> type[HashMethod]:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered methods: {sorted(METHODS)}") from None
