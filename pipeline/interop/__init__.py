"""Foreign formats in: what other tools save, read as rotoscope's configuration.

``deforum`` converts a Deforum settings file into a keyframe file (its tables of keys,
its schedule strings, the importer). May import ``config``, ``models`` (the A1111 sampler
names) and ``pipeline.errors``/``pipeline.atomic``; never torch.
"""
