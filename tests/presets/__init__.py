"""Tests of the shipped CRM presets against emulated vendor servers."""
