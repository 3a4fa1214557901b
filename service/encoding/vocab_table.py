r"""Token ids for many texts at once, in numpy: no Python bytecode per token.

A speed-up for the Python path's ids-only calls (``SENTIMENT_VOCAB_TABLE``): the regex and
dict lookup cost Python work per token, with the GIL held; here the same rules run as
array operations over all the texts joined together. The encoder uses it only for calls
large enough to repay its fixed cost per call (docs/performance.md).

The rules are those of the pre-tokenizer on normalised text (tested equal to the regex
and to the Rust tokenizer): a token is a run of word characters (``\w``) joined by single
inner apostrophes, or any other character that is not whitespace (``\s``), alone. Lookup
is exact, never by a hash alone: a token of up to 16 bytes *is* its key (its bytes as two
little-endian 64-bit words, zero-padded, plus its length), found in an open-addressing
table of the vocabulary's keys; a longer token is looked up in a dict.

Texts are read one byte per character. ASCII is itself; each non-ASCII character that a
vocabulary word holds gets a byte of its own (0x80 up); any other character can only be
part of an unknown token, so it needs only its class: one byte stands for every such
word character, one for every other symbol, and whitespace becomes a space.
"""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np

_SPACE, _WORD, _APOSTROPHE, _OTHER = 0, 1, 2, 3
# Python's \s among ASCII characters (\x1c-\x1f included) and \w (letters, digits, _).
_CLASS = np.full(256, _OTHER, dtype=np.uint8)
_CLASS[[ord(c) for c in "\t\n\v\f\r\x1c\x1d\x1e\x1f "]] = _SPACE
_CLASS[[ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = _WORD
_CLASS[ord("'")] = _APOSTROPHE
_KEY_BYTES = 16  # two 64-bit words
# MASK[n]: the low n bytes of a 64-bit word (tokens shorter than 8 bytes: zero the rest).
_MASK = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xC2B2AE3D27D4EB4F)
_EMPTY = -1
# Stand-ins for non-ASCII characters no vocabulary word holds (no key contains them), and
# the bytes left for those that some word holds.
_OTHER_STAND_IN, _WORD_STAND_IN = 0xFE, 0xFF
_OWN_BYTES = range(0x80, 0xFE)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_WORD_CHAR, _SPACE_CHAR = re.compile(r"\w"), re.compile(r"\s")
# Non-ASCII characters remembered (their byte); texts with new ones beyond this are refused
# (``takes``), so clients sending rare characters cannot grow the table's memory.
_MAX_CHARS = 65_536


class VocabTable:
    """``ids(texts)``: the WordLevel ids of each text's pre-tokenizer tokens (``takes``)."""

    def __init__(self, vocab: dict[str, int], unknown_id: int, slots_per_word: int = 4):
        if slots_per_word < 1:
            raise ValueError("slots_per_word must be at least 1")
        self._unknown = unknown_id
        self._class = _CLASS.copy()
        self._byte_of = self._own_bytes(vocab)  # non-ASCII code point -> its byte
        words = [w for w in vocab if w and all(c.isascii() or ord(c) in self._byte_of for c in w)]
        self._long = {w: vocab[w] for w in vocab if len(w) > _KEY_BYTES}
        short = [self._bytes_of(w) for w in words if len(w) <= _KEY_BYTES]
        slots = 1 << max(4, (slots_per_word * len(short)).bit_length())
        self._shift = np.uint64(64 - (slots.bit_length() - 1))
        self._wrap = slots - 1
        first, second, length = _word_keys(short)
        placed = self._place(self._slots(first, second, length).tolist(), slots)
        self._first = np.zeros(slots, dtype=np.uint64)
        self._second = np.zeros(slots, dtype=np.uint64)
        self._length = np.zeros(slots, dtype=np.uint8)
        self._id = np.full(slots, _EMPTY, dtype=np.int32)
        self._first[placed], self._second[placed], self._length[placed] = first, second, length
        self._id[placed] = [vocab[w] for w in words if len(w) <= _KEY_BYTES]

    def _own_bytes(self, vocab: dict[str, int]) -> dict[int, int]:
        """A byte for each non-ASCII character of the vocabulary; none if they are too many.

        With too many (another bundle's vocabulary), only ASCII texts are taken.
        """
        chars = sorted({c for w in vocab for c in w if not c.isascii()})
        if len(chars) > len(_OWN_BYTES):
            self._non_ascii = False
            return {}
        self._non_ascii = True
        self._class[_OTHER_STAND_IN] = _OTHER
        self._class[_WORD_STAND_IN] = _WORD
        for char, byte in zip(chars, _OWN_BYTES, strict=False):
            self._class[byte] = _class_of(char)
        return {ord(char): byte for char, byte in zip(chars, _OWN_BYTES, strict=False)}

    def _bytes_of(self, text: str) -> bytes:
        """One byte per character; ``ValueError`` if ``text`` is not one the table ``takes``."""
        if text.isascii():
            return text.encode("ascii")
        # Per character in numpy, then a dict lookup per non-ASCII character only
        # (``str.translate`` with a dict costs ~50 ns for every character).
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        out = codes.astype(np.uint8)
        high = codes > 0x7F
        chars = codes[high].tolist()
        try:
            out[high] = [self._byte_of[c] for c in chars]
        except KeyError:  # a character new to the table (the encoder asked ``takes`` first)
            if not self.takes(text):
                raise ValueError("a text holds characters the vocab table cannot take") from None
            out[high] = [self._byte_of[c] for c in chars]
        return out.tobytes()

    def takes(self, text: str) -> bool:
        """Whether ``ids`` can encode ``text``: ASCII, or a byte is known for every character.

        Characters new to the table get their class's stand-in here (remembered, up to
        ``_MAX_CHARS``); a text with new ones beyond that is refused.
        """
        if text.isascii():
            return True
        if not self._non_ascii:
            return False
        byte_of = self._byte_of
        for char in set(_NON_ASCII.findall(text)):
            if ord(char) not in byte_of:
                if len(byte_of) >= _MAX_CHARS:
                    return False
                byte_of[ord(char)] = _stand_in(char)
        return True

    def _place(self, homes: list[int], slots: int) -> list[int]:
        """Linear probing: each key's slot, the first free one from its home slot."""
        taken = [False] * slots
        placed = []
        self._max_probe = 0
        for home in homes:
            slot, probe = home, 0
            while taken[slot]:
                slot, probe = (slot + 1) & self._wrap, probe + 1
            taken[slot] = True
            placed.append(slot)
            self._max_probe = max(self._max_probe, probe)
        return placed

    def _slots(self, first: np.ndarray, second: np.ndarray, length: np.ndarray) -> np.ndarray:
        # Arithmetic modulo 2**64 (array operations wrap silently), top bits as the slot.
        mixed = (first * _MIX1) ^ (second * _MIX2) ^ length.astype(np.uint64)
        return ((mixed * _MIX2) >> self._shift).astype(np.int64)

    def ids(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text (each one ``takes``: ``ValueError`` otherwise), in order.

        Each is an int32 array, a view into one array for the whole call: no Python int
        per token is made, and the scorer pads straight from these.
        """
        if not texts:
            return []
        joined = "\n".join(texts)  # a space between texts: no token spans two of them
        raw = b"\n".join(map(self._bytes_of, texts))  # (the same, one byte per character)
        starts, ends, buffer = _token_bounds(raw, self._class)
        ids = self._lookup(starts, ends - starts, buffer)
        longer = np.flatnonzero(ends - starts > _KEY_BYTES)
        for k, start, end in zip(
            longer.tolist(), starts[longer].tolist(), ends[longer].tolist(), strict=True
        ):
            ids[k] = self._long.get(joined[start:end], self._unknown)
        ids.flags.writeable = False  # the views share it: no caller may edit another's ids
        text_starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
        cuts = [0, *np.searchsorted(starts, text_starts[1:]).tolist(), len(ids)]
        return [ids[a:b] for a, b in pairwise(cuts)]

    def _lookup(self, starts: np.ndarray, lengths: np.ndarray, buffer: bytes) -> np.ndarray:
        first, second = _text_keys(buffer, starts, lengths)
        slot = self._slots(first, second, lengths)
        # Most tokens sit in their home slot: that first probe runs on whole arrays (no
        # index arrays); the rest probe on.
        found = self._holds(slot, first, second, lengths)
        ids = np.where(found, self._id[slot], self._unknown).astype(np.int32)
        todo = np.flatnonzero(~found & (self._id[slot] != _EMPTY))
        # Linear probing; no key sits further than _max_probe slots from its home slot,
        # so the loop is bounded. An empty slot ends a search: the token is unknown.
        for _ in range(self._max_probe):
            if not len(todo):
                break
            at = slot[todo] = (slot[todo] + 1) & self._wrap
            found = self._holds(at, first[todo], second[todo], lengths[todo])
            ids[todo[found]] = self._id[at[found]]
            todo = todo[~found & (self._id[at] != _EMPTY)]
        return ids

    def _holds(
        self, slot: np.ndarray, first: np.ndarray, second: np.ndarray, lengths: np.ndarray
    ) -> np.ndarray:
        """Whether each slot holds that key."""
        return (
            (self._first[slot] == first)
            & (self._second[slot] == second)
            & (self._length[slot] == lengths)
        )


def _class_of(char: str) -> int:
    return _WORD if _WORD_CHAR.match(char) else _SPACE if _SPACE_CHAR.match(char) else _OTHER


def _stand_in(char: str) -> int:
    """The byte for a character no vocabulary word holds: only its class matters."""
    return {_WORD: _WORD_STAND_IN, _SPACE: ord(" "), _OTHER: _OTHER_STAND_IN}[_class_of(char)]


def _word_keys(words: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each word's key: bytes 0-7 and 8-15 as little-endian words (zero-padded), length."""
    raw = [w.ljust(_KEY_BYTES, b"\0") for w in words]
    first = np.array([int.from_bytes(r[:8], "little") for r in raw], dtype=np.uint64)
    second = np.array([int.from_bytes(r[8:], "little") for r in raw], dtype=np.uint64)
    return first, second, np.array([len(w) for w in words], dtype=np.int64)


def _text_keys(
    buffer: bytes, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The same keys as ``_word_keys`` for tokens inside ``buffer`` (zero-padded by 16)."""
    # Every position's next 8 bytes as one little-endian word: a view, not a copy (the
    # padding keeps reads past the text inside the buffer). Masking zeroes the bytes past
    # the token, as the word keys are zero-padded.
    words = np.ndarray((len(buffer) - 7,), dtype="<u8", buffer=buffer, strides=(1,))
    first = words[starts] & _MASK[np.minimum(lengths, 8)]
    second = words[starts + 8] & _MASK[np.clip(lengths - 8, 0, 8)]
    return first, second


def _token_bounds(text: bytes, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Start and end offsets of every token of ``text``, and its bytes (zero-padded)."""
    buffer = text + b"\0" * _KEY_BYTES
    n = len(text)
    kind = classes[np.frombuffer(buffer, dtype=np.uint8, count=n)]
    word = kind == _WORD
    # An apostrophe between two word characters belongs to the word ("don't").
    word[1:-1] |= (kind[1:-1] == _APOSTROPHE) & word[:-2] & word[2:]
    alone = ~word & (kind != _SPACE)  # every other non-space character is one token
    word_before = np.zeros(n, dtype=bool)
    word_before[1:] = word[:-1]
    word_after = np.zeros(n, dtype=bool)
    word_after[:-1] = word[1:]
    starts = np.flatnonzero(alone | (word & ~word_before))
    ends = np.flatnonzero(alone | (word & ~word_after)) + 1
    return starts, ends, buffer
