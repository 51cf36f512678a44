"""Token counts for limits and usage, by the same rule dropscribe's config applies to ``context``.

One token per CJK character (Han, kana, Hangul), one per run of other non-space characters. Counting
exactly as the service does means a context the service accepts is never refused here, and one it
would refuse is refused here too (docs/dashscope.md, "Sync recognition": ≤ 10 000 tokens).
"""

from __future__ import annotations

import re

_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")


def count_tokens(text: str) -> int:
    """``"阿里云 ASR"`` is 4 tokens: three characters and one word, not two space-separated words."""
    cjk = len(_CJK.findall(text))
    words = len(_CJK.sub(" ", text).split())
    return cjk + words
