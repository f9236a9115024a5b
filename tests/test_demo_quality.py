"""Every deep unsupervised method beats LSH and the chance floor clearly on the demo.

One check for all of them (issue 6): trained on the default demo's training split at 32
bits with config.yaml's demo-sized settings, the mean mAP@all of I->T and T->I on the
query split must beat LSH by 0.05 and the expected mAP of a random ranking by 0.1.
VTM-UCH trains on the graph stage's output and has the same check in test_vtmuch.py.
"""

from __future__ import annotations

import pytest
from conftest import demo_chance, demo_map

from xmhash.methods import METHODS
from xmhash.methods.base import DeepMethod

UNSUPERVISED = sorted(
    name
    for name, cls in METHODS.items()
    if issubclass(cls, DeepMethod) and not cls.supervised and not cls.needs & {"graph", "encoder"}
)


def test_every_unsupervised_deep_method_is_checked():
    assert {"djsrh", "jdsh", "dgcpn", "ucch", "ucmfh", "cirh", "daeh", "enhash"} <= set(
        UNSUPERVISED
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", UNSUPERVISED)
def test_beats_lsh_and_chance_on_the_demo(demo_default, one_thread, method):
    chance, lsh = demo_chance(demo_default), demo_map(demo_default, "lsh")
    ours = demo_map(demo_default, method)
    assert ours > lsh + 0.05 and ours > chance + 0.1, (ours, lsh, chance)
