"""The shipped PD checkpoint (a package, so the wheel's `*.pt`/`*.json` package data has it)."""
