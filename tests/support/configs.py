"""Run configurations built in code for unit tests, without Hydra or a keyframe file."""

from __future__ import annotations

from pipeline.config.schema import InputConfig, ModelConfig, RunConfig


def make_cfg(**values: object) -> RunConfig:
    """A config for ``clip.mp4`` with the model ``m``; each keyword sets one value, a
    double underscore reaching into a section (``animation__mode=...``)."""
    cfg = RunConfig(input=InputConfig(path="clip.mp4"), model=ModelConfig(path="m"))
    for key, value in values.items():
        target = cfg
        *parents, leaf = key.split("__")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, leaf, value)
    return cfg
