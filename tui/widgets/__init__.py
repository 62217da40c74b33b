"""Widgets shared by the screens: the sidebar, form fields with their error labels."""
