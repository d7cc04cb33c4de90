"""Foreign formats in: what other tools save, read as rotoscope's configuration.

``deforum`` converts a Deforum settings file into a keyframe file (its tables of keys,
its schedule strings, the importer); ``a1111`` reads the generation parameters of a PNG
A1111 or rotoscope wrote back as one. May import ``config``, ``models`` (the A1111 sampler
names) and ``pipeline.errors``/``pipeline.atomic``; never torch.
"""
