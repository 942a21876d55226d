"""Notebook servers: JupyterLab per project (issue 4)."""
