"""The Sphinx extension: it renders results and never runs anything."""
