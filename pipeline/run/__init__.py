"""One job over one run folder: the configured stages, in order.

The top layer beside ``cli``: it imports every stage and nothing below imports it.
``job`` runs the stages holding the run folder's lock and writes the report whatever
happens. May import any package except ``cli``.
"""
