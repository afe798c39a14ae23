"""The storable-text checks of every write path (storage/checks.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sat_storage import json_text
from sat_storage.storage.checks import UNSTORABLE, check_json_text, unstorable

# ASCII and not, NUL, lone surrogates (high and low), an escaped NUL's characters
_TEXT = st.text(
    alphabet=st.sampled_from(list("a\\u0 \x00\x01é漢\ud800\udfff\U0001f600")), max_size=12
)


def reference(text: str) -> str | None:
    """The verdict of the pattern alone."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "a lone surrogate"


class StorableTests(SynchronousTestCase):
    @settings(max_examples=300, database=None, deadline=None)
    @given(_TEXT)
    def test_unstorable_is_the_pattern(self, text: str) -> None:
        """unstorable() (ASCII fast path) names what the pattern finds first, or None."""
        self.assertEqual(unstorable(text), reference(text))

    @settings(max_examples=300, database=None, deadline=None)
    @given(st.lists(_TEXT, max_size=3))
    def test_json_text_refused_when_unstorable(self, strings: list[str]) -> None:
        """check_json_text() refuses a value exactly when one of its strings is unstorable."""
        value = {"s": strings}
        bad = any(reference(s) is not None for s in strings)
        try:
            check_json_text("parsed", value, json_text.dumps(value))
        except ValueError:
            refused = True
        else:
            refused = False
        self.assertEqual(refused, bad)
