"""The command palette's switchboard commands (Ctrl+P): the main actions and every integration by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

Command = tuple[str, str, Callable[[], object]]


class SwitchboardCommands(Provider):
    """Offers what the sidebar and the key bindings offer, searchable by name."""

    def _commands(self) -> list[Command]:
        from tui.screens.main import MainScreen

        screen = self.screen
        if not isinstance(screen, MainScreen):
            return []
        commands: list[Command] = [
            ("Add New Integration", "Connect a CRM with the wizard", screen.action_add_integration),
            ("Add New Script", "A link offered with every call", screen.action_add_script),
            ("Home", "Your organisation at a glance", partial(screen.show_view, "home")),
            ("Test call", "See what a call would show", partial(screen.show_view, "test-call")),
            ("Activity", "Who changed what, when", partial(screen.show_view, "activity")),
            ("Reload", "Read everything again", screen.reload),
        ]
        for row in screen.rows:
            commands.append(
                (f"Open {row.name}", f"{row.preset} · {row.status.value}", partial(screen.show_integration, row.id))
            )
        overview = screen.overview.overview
        if screen.view == "overview" and overview is not None:
            name = overview.integration.name
            commands += [
                (f"Sync {name} now", "Refresh its cached numbers", screen.action_sync_now),
                (f"Edit {name}", "Settings, notification, scripts", screen.action_edit),
                (f"Delete {name}", "Erase it and its cached data", screen.action_delete),
            ]
        return commands

    async def discover(self) -> Hits:
        """Everything, before anything is typed."""
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """The commands whose names match what was typed, best first."""
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
