"""A presets package for tests: a preset whose TOML names a code module beside it."""
