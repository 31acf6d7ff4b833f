"""GPU memory plan: how much memory each job of a config needs, checked before it is planned."""
