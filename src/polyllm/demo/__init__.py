"""The web UI's tooling on the Python side: its contract export and the demo recording."""
