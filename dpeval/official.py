"""compatibility: removed once the redesign lands (use dpeval.template)."""

from .template.official import export_template, read_official_dir

__all__ = ["export_template", "read_official_dir"]
