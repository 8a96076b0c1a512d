"""Example third-party uasbench plugin."""
