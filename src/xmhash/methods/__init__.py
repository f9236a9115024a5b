"""The method registry: every method is one file in this package plus one line below.

Only this module maps names to classes; no other code branches on a method's name.
"""

from __future__ import annotations

from xmhash.methods.base import HashMethod
from xmhash.methods.cca_itq import CCAITQ
from xmhash.methods.dgcpn import DGCPN  # djsrh-family
from xmhash.methods.djsrh import DJSRH  # djsrh-family
from xmhash.methods.jdsh import JDSH  # djsrh-family
from xmhash.methods.lsh import LSH

METHODS: dict[str, type[HashMethod]] = {
    cls.name: cls
    for cls in (
        LSH,
        CCAITQ,
        DJSRH,  # djsrh-family
        JDSH,  # djsrh-family
        DGCPN,  # djsrh-family
    )
}


def get_method(name: str) -> type[HashMethod]:
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; registered methods: {sorted(METHODS)}") from None
