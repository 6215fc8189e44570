"""`dynosim doctor`: run the app in dynos the way Heroku would and say what will break there,
and why. Pure parts: `report` (the findings), `observations`, `checks`, `procfs`; I/O parts:
`static` (the folder), `http` (requests to dynos), `lab` (dynos on the engine), `run` (the
whole run)."""

from .report import Check, Fact, Finding, Report, Status
from .run import Doctor, DoctorOptions, examine

__all__ = ["Check", "Doctor", "DoctorOptions", "Fact", "Finding", "Report", "Status", "examine"]
