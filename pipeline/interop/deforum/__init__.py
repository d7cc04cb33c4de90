"""Deforum settings files: ``tables`` (which keys map, which never matter, what cannot be
reproduced), ``schedules`` (Deforum's schedule strings), ``values`` (its JSON values) and
``importer`` (one conversion into a keyframe file)."""
