"""Tiny random-weight models (SD 1.x, SDXL, ControlNets) and the single-file exporter,
built locally for the tests and the offline demo. Runtime code never imports this
package; it may import any package but ``cli`` and ``run``.
"""
