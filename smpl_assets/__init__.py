"""Body-template assets of dpeval (installed as ``dpeval._assets``).

``open_template.npz`` is the embedded CC0 body built by ``build_open_template.py``;
see README.md in this folder for its provenance and checksum.
"""
