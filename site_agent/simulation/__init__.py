"""Discrete-event simulation of an N-site contact center driving the real routing engine.

One module per concept: ``scenario`` (what is simulated) and ``loading`` (from where),
``distributions`` (handle times), ``traffic`` (the contacts), ``shifts`` (who works when),
``policies`` (how the network is routed), ``simulation`` (the event loop), ``trace`` (what
happened), ``statistics`` (what it measured), ``experiment`` (policies side by side on common
random numbers) and ``report`` (tables and JSON).
"""
