"""The local dashboard `dynosim up` serves: Heroku's app overview and Metrics tab on 127.0.0.1,
behind a secret token. A client of the Python API (`api.App`), as the CLI is."""

from .server import Dashboard

__all__ = ["Dashboard"]
