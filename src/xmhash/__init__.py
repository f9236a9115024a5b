"""xmhash: cross-modal hashing, from raw datasets to the comparison table.

Importing the package has no side effects and imports no heavy dependency; the
submodules import what they need.
"""

__version__ = "0.1.0"
