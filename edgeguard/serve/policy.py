"""What `edgeguard serve` does with a key its monitor flagged: one policy per deployment (`--on-flag`).

    log          record the flag (keys database + a warning in the server's log); answer as before
    label-only   answer the flagged key with labels only (one-hot rows, in the deployment's output form)
    slow         hold the flagged key to SLOW_RATE items per second (429 + Retry-After beyond it)
    block        refuse the flagged key (403), before its request is read
    STACK SPEC   any defense stack (docs/defenses.md), run after the deployment's own on the flagged
                 key's answers, e.g. "reverse_sigmoid(beta=1, gamma=0.5) | round(decimals=1)"

Every policy logs and persists the flag; an operator reviews it with `edgeguard keys list` and lifts
it with `edgeguard keys clear-flag NAME`. Answer-shaping policies (label-only, a stack) already apply
to the request that raised the flag; slow and block apply from the key's next request, since the
flagging request was admitted and charged before the model saw it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeguard.defenses import DefenseStack, parse_stack
from edgeguard.errors import EdgeguardError

POLICIES = ("log", "label-only", "slow", "block")
SLOW_RATE = 1.0  # items per second (bursts of 1) for a slowed key: a 2,000-query theft takes half an hour


@dataclass(frozen=True)
class FlagPolicy:
    spec: str = "log"
    block: bool = False
    slow: bool = False
    stack: DefenseStack = field(default_factory=DefenseStack)  # extra defenses on a flagged key's answers

    @classmethod
    def parse(cls, spec: str) -> "FlagPolicy":
        spec = spec.strip()
        if spec in ("log", "block", "slow"):
            return cls(spec, block=spec == "block", slow=spec == "slow")
        if spec == "label-only":
            return cls(spec, stack=parse_stack("label_only"))
        try:
            stack = parse_stack(spec)
        except EdgeguardError as e:
            raise EdgeguardError(f"--on-flag must be one of {', '.join(POLICIES)} or a defense stack spec; {e}") from None
        if not len(stack):
            raise EdgeguardError(f"--on-flag must be one of {', '.join(POLICIES)} or a defense stack spec; got {spec!r}")
        return cls(spec, stack=stack)

    @property
    def name(self) -> str:
        """For start-up lines and logs: a stack by its defenses' names only (parameters can be secrets)."""
        if self.spec in POLICIES:
            return self.spec
        return " | ".join(d.name for d in self.stack.defenses)
