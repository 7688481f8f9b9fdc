"""Build-time helpers for ``smpl_assets/build_open_template.py`` (not shipped in dpeval)."""
