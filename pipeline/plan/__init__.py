"""Rows out: every schedule, prompt keyframe and seed resolved into one row per frame.

``build`` makes the rows (``rows.PlanRow``) from the config, ``schedules`` and
``expressions`` parse Deforum's schedule language with a safe evaluator, ``seeds`` the
seed behaviours, ``prompt_syntax`` A1111's attention syntax, ``prompt_editing`` its
``[a:b:when]``/``[a|b]``, ``networks`` LoRA tags and embedding names (files found
safely, weights per frame), ``styles`` A1111's styles.csv, ``chart`` draws plan.png,
``stage`` is the plan stage, ``checks`` its cross-key rules, ``cadence`` which frames
a cadence diffuses. May import
``config``, ``records``, ``source``, ``control`` (checks), ``interop`` (foreign names),
``animation`` (the source's flow, for cadence's adaptive keyframes), the light helpers of
``models.samplers`` and ``models.weights`` (sampler names, file fingerprints) and
``pipeline.errors``/``pipeline.atomic``; never torch.
"""
