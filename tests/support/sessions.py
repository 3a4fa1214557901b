"""What a loaded scorer's onnxruntime sessions were opened with."""

from __future__ import annotations

import onnxruntime as ort

from service.inference.grouped import GroupedScorer
from service.inference.scorer import Scorer

ENV_ALLOCATORS = "session.use_env_allocators"


def sessions_of(scorer: Scorer) -> list[ort.InferenceSession]:
    """The plain session, and the grouped ones if the scorer has them."""
    grouped = [s for s, _ in scorer._sessions.values()] if isinstance(scorer, GroupedScorer) else []
    return [scorer.session, *grouped]


def uses_shared_arena(session: ort.InferenceSession) -> bool:
    """Whether the session draws from the process's one arena (``register_shared_arena``)."""
    try:
        return session.get_session_options().get_session_config_entry(ENV_ALLOCATORS) == "1"
    except RuntimeError:  # onnxruntime's answer for a key never set
        return False
