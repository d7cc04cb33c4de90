"""The configuration: schema dataclasses, composition with one-line errors, which keys
exist (``keys``: did-you-mean, ``+`` additions), paths, keyframe files, the Deforum
importer, and the registry of schedulable values.

The bottom layer next to ``pipeline.errors``: every stage reads it. May import only
``pipeline.errors`` and ``pipeline.atomic``; never torch.
"""
