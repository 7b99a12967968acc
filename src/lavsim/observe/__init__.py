"""Looking inside a run: timeline traces for Perfetto (:mod:`~lavsim.observe.timeline`),
traced RPC calls (:mod:`~lavsim.observe.calls`), symbolic instruction traces
(:mod:`~lavsim.observe.itrace`) and statistics files (:mod:`~lavsim.observe.statsfile`).

Everything here reads state only; a run observed gives the same cycles as one not observed.
"""
