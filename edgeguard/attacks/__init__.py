"""Model extraction attacks, to measure defenses (not to ship as a weapon).

Every attack talks to its victim through `Victim.query(x) -> probabilities` and nothing else, so
the same attack runs against a local export + defense stack or a remote `edgeguard serve`.
"""
