"""The app's screens: sign-in, the main screen (sidebar and panes), the wizard, the dialogs."""
