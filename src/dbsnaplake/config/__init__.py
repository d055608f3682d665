"""Settings: every setting declared once (settings.py) and the TOML file that sets them (file.py)."""
