"""Weights in: the base model (hub id, diffusers folder, single file), ControlNets,
LoRAs, textual-inversion embeddings, the 3D camera's depth models (``depth``), samplers
and devices, each with one-line errors and a cheap identity for frame keys.

``weights`` is what the loaders share (fingerprints, hub cache, load errors);
``safe_load`` reads weight files without running code (pickles weights-only); ``speed``
applies the throughput settings (channels_last, torch.compile) that never change a
frame's key. Imports
torch and diffusers (lazily where it can). May import ``config`` and ``pipeline.errors``.
"""
