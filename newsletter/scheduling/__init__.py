"""The scheduler: the weekly job (inbox, build, review or auto-send) and the due-work tick."""
