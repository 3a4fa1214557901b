"""The page at / in a real browser (headless Chromium), against a live server and the
committed model: what it shows must be the API's answer, shown as text, never as HTML.

The first test saves docs/images/ui.png, the screenshot in the README.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import console_errors
from tests.support.bundles import copy_as, promote_by_hand, write_softmax_bundle
from tests.support.servers import Server

# Non-ASCII before the sentiment words (an emoji is 2 UTF-16 units but 1 code point), an
# accent, IMDB's <br />, and sentences that disagree.
REVIEW = (
    "I went in expecting little 😀 and the first hour was excellent: a sharp script, a "
    "superb cast and a score I loved.<br /><br />Then the café scene drags on and the "
    "ending is terrible, a lazy, boring mess. What a waste."
)
INJECTION = (
    'Great film! <img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    '<svg onload="window.__pwned=3"></svg><b>bold?</b> Awful ending.'
)
WAIT_S = 30


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("page"), SENTIMENT_LOG_LEVEL="warning") as server:
        yield server


def analyse(browser, base: str, text: str) -> None:
    """Open the page, type ``text``, press Analyse and wait for the answer."""
    browser.get(f"{base}/")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#model option")
    )
    box = browser.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, WAIT_S).until(
        lambda d: (
            d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
            or d.find_element(By.ID, "error").is_displayed()
        )
    )


def word_spans(browser) -> list[dict]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#words .tok')).map(s => ({"
        "start: +s.dataset.start, end: +s.dataset.end, weight: +s.dataset.weight,"
        "text: s.textContent, strong: s.classList.contains('strong')}))"
    )


def grouped(tokens: list[dict]) -> list[dict]:
    """The API's tokens as the page groups them (overlapping spans shown as one word)."""
    groups: list[dict] = []
    for t in tokens:
        if groups and t["start"] < groups[-1]["end"]:
            groups[-1]["end"] = max(groups[-1]["end"], t["end"])
            groups[-1]["weight"] += t["weight"]
        else:
            groups.append({"start": t["start"], "end": t["end"], "weight": t["weight"]})
    return groups


def test_page_shows_the_api_answer(browser, live, screenshots_dir):
    analyse(browser, live.base, REVIEW)
    assert not browser.find_element(By.ID, "error").is_displayed()
    predicted = httpx.post(
        f"{live.base}/predict", json={"text": REVIEW, "sentences": True}, timeout=30
    ).json()["predictions"][0]
    explained = httpx.post(f"{live.base}/explain", json={"text": REVIEW}, timeout=30).json()

    # label and one bar per label, with the API's probabilities
    assert browser.find_element(By.ID, "label").text == predicted["label"]
    values = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#bars .bar-value")]
    assert values == [f"{100 * p:.1f}%" for p in predicted["probabilities"].values()]
    assert browser.find_element(By.ID, "mixed").is_displayed() == predicted["mixed"]

    # sentences: the API's, in order, coloured by their labels
    items = browser.find_elements(By.CSS_SELECTOR, "#sentences li")
    assert [i.find_element(By.CLASS_NAME, "sentence-text").text for i in items] == [
        s["text"] for s in predicted["sentences"]
    ]
    assert [i.get_attribute("data-label") for i in items] == [
        s["label"] for s in predicted["sentences"]
    ]
    assert len({i.value_of_css_property("border-left-color") for i in items}) == len(
        {s["label"] for s in predicted["sentences"]}
    )

    # words: every token the API weighed, at its offsets, with its weight; the same
    # highlighted words; the text shown is the review's own characters at those offsets
    spans = word_spans(browser)
    want = grouped(explained["tokens"])
    assert [(s["start"], s["end"]) for s in spans] == [(g["start"], g["end"]) for g in want]
    for span, group in zip(spans, want, strict=True):
        # two requests: the same scores up to float noise from their batches' shapes
        assert span["weight"] == pytest.approx(group["weight"], abs=1e-5)
        assert span["text"] == REVIEW[group["start"] : group["end"]]
    largest = max(abs(s["weight"]) for s in spans)
    assert [s for s in spans if s["strong"]] == [
        s for s in spans if abs(s["weight"]) >= 0.25 * largest
    ]
    top = sorted(want, key=lambda g: -abs(g["weight"]))[:3]
    assert [s["text"] for s in sorted(spans, key=lambda s: -abs(s["weight"]))[:3]] == [
        REVIEW[g["start"] : g["end"]] for g in top
    ]
    strongest = max(spans, key=lambda s: abs(s["weight"]))
    assert strongest["text"] in {"terrible", "waste", "boring", "excellent", "superb", "loved"}
    hover = browser.find_element(By.CSS_SELECTOR, f"#words .tok[data-start='{strongest['start']}']")
    assert f"{strongest['weight']:+.4f}" in hover.get_attribute("title")

    assert console_errors(browser) == []
    save_full_page(browser, screenshots_dir / "ui.png")


def save_full_page(browser, path) -> None:
    """A screenshot of the whole page, not only the window (Chrome DevTools protocol)."""
    width, height = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def test_injected_markup_is_shown_as_text_and_never_runs(browser, live):
    analyse(browser, live.base, INJECTION)
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.execute_script("return window.__pwned") is None
    for selector in ("#result img", "#result script", "#result svg", "#result b"):
        assert browser.find_elements(By.CSS_SELECTOR, selector) == [], selector
    shown = browser.find_element(By.ID, "words").text
    assert '<img src=x onerror="window.__pwned=1">' in shown
    assert "<script>window.__pwned=2</script>" in shown
    sentences = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, "#sentences li"))
    assert "<script>" in sentences
    assert console_errors(browser) == []


def test_csp_blocks_inline_scripts_and_other_origins(browser, live):
    """Even a script element that got into the page would not run, and nothing can be
    fetched from elsewhere: the Content-Security-Policy, tested in the browser."""
    browser.get(f"{live.base}/")
    violations = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const seen = [];
        document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
        const inline = document.createElement("script");
        inline.textContent = "window.__inline = 1";
        document.body.append(inline);
        const img = document.createElement("img");
        img.src = "http://203.0.113.7/pixel.png";
        document.body.append(img);
        fetch("http://203.0.113.7/x").catch(() => seen.push("fetch refused"));
        setTimeout(() => done(seen), 500);
        """
    )
    assert browser.execute_script("return window.__inline") is None
    assert any(v.startswith("script-src") for v in violations), violations
    assert any(v.startswith("img-src") for v in violations), violations
    assert any(v.startswith("connect-src") for v in violations), violations
    browser.get_log("browser")  # (the violations just provoked are logged: drop them)


def test_api_errors_are_shown_as_readable_messages(browser, live):
    analyse(browser, live.base, "   ")
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed()
    assert "refused this text (422)" in error.text and "empty or only whitespace" in error.text
    assert not browser.find_element(By.ID, "result").is_displayed()
    browser.get_log("browser")  # the failed request is logged as a 422: expected

    long_review = "A fine, moving film. " * 120  # 600 tokens: over /explain's limit
    analyse(browser, live.base, long_review)
    assert browser.find_element(By.ID, "label").text  # the prediction is still shown
    words_error = browser.find_element(By.ID, "words-error")
    assert words_error.is_displayed()
    assert "(422)" in words_error.text and "SENTIMENT_EXPLAIN_MAX_TOKENS" in words_error.text
    browser.get_log("browser")


def test_a_503_says_when_to_retry(browser, tmp_path):
    """A model that is not ready: 503 with Retry-After, shown as such on the page."""
    empty = tmp_path / "no-bundle-here"  # (exists: a missing path stops the server at start)
    empty.mkdir()
    server = Server(tmp_path, SENTIMENT_MODEL_DIR=str(empty))
    try:
        server.start(wait_ready=False)
        api = httpx.post(f"{server.base}/predict", json={"text": "good"}, timeout=10)
        assert api.status_code == 503 and api.headers["retry-after"]
        analyse(browser, server.base, "A fine film.")
        error = browser.find_element(By.ID, "error").text
        assert "(503)" in error and "not ready" in error
        assert f"Try again in {api.headers['retry-after']} s" in error
    finally:
        server.stop()
    browser.get_log("browser")


def test_the_model_picker_lists_the_served_models_and_uses_the_chosen_one(
    browser, tmp_path, bundle_dir
):
    root = tmp_path / "models"
    copy_as(bundle_dir, root, "sentiment-lstm")
    write_softmax_bundle(root / "three" / "v1", "three", "v1")
    promote_by_hand(root, "three", "v1")
    env = {"SENTIMENT_MODELS_ROOT": str(root), "SENTIMENT_DEFAULT_MODEL": "sentiment-lstm"}
    with Server(tmp_path, **env) as server:
        browser.get(f"{server.base}/")
        WebDriverWait(browser, WAIT_S).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2
        )
        picker = Select(browser.find_element(By.ID, "model"))
        assert [o.get_attribute("value") for o in picker.options] == ["sentiment-lstm", "three"]
        assert picker.first_selected_option.get_attribute("value") == "sentiment-lstm"
        picker.select_by_value("three")
        assert "negative, neutral, positive" in browser.find_element(By.ID, "model-info").text
        browser.find_element(By.ID, "text").send_keys("Great superb wonderful. Awful terrible.")
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, WAIT_S).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done"
        )
        assert "three v1" in browser.find_element(By.ID, "status").text
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar-track")
        assert [b.get_attribute("data-label") for b in bars] == ["negative", "neutral", "positive"]
        labels = [
            i.get_attribute("data-label")
            for i in browser.find_elements(By.CSS_SELECTOR, "#sentences li")
        ]
        assert labels == ["positive", "negative"]
    assert console_errors(browser) == []


def test_a_default_model_that_is_not_ready_is_not_preselected(browser, tmp_path, bundle_dir):
    """The default's option is disabled ("not ready"); the first ready model is chosen, so
    the first Analyse is answered instead of earning a 503."""
    root = tmp_path / "models"
    copy_as(bundle_dir, root, "sentiment-lstm")
    write_softmax_bundle(root / "three" / "v1", "three", "v1")
    promote_by_hand(root, "three", "v1")
    (root / "three" / "v1" / "model.onnx").write_bytes(b"tampered")
    env = {"SENTIMENT_MODELS_ROOT": str(root), "SENTIMENT_DEFAULT_MODEL": "three"}
    server = Server(tmp_path, **env)
    try:
        server.start(wait_ready=False)
        browser.get(f"{server.base}/")
        WebDriverWait(browser, WAIT_S).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 2
        )
        picker = Select(browser.find_element(By.ID, "model"))
        assert picker.first_selected_option.get_attribute("value") == "sentiment-lstm"
        three = browser.find_element(By.CSS_SELECTOR, "#model option[value='three']")
        assert three.get_attribute("disabled") is not None and "not ready" in three.text
    finally:
        server.stop()


def test_docs_render_offline(browser, live):
    browser.get(f"{live.base}/docs")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 8
    )
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/predict", "/explain", "/tokenize", "/models"} <= paths, paths
    assert console_errors(browser) == []

    browser.get(f"{live.base}/redoc")
    WebDriverWait(browser, WAIT_S).until(lambda d: "/explain" in d.page_source)
    assert "Explain" in browser.find_element(By.TAG_NAME, "body").text
    # ReDoc's footer asks for a logo from its CDN: the page's policy refuses it (so
    # nothing is fetched). Anything else in the console is a failure.
    errors = [
        e for e in console_errors(browser) if "cdn.redoc.ly/redoc/logo-mini.svg" not in e["message"]
    ]
    assert errors == []


def test_with_api_keys_the_page_asks_for_one_and_uses_it(browser, tmp_path):
    """SENTIMENT_API_KEYS on: the page loads (open), its API calls get 401 until a key is
    entered; with the key it lists the models and shows the API's answer."""
    key = "browser-test-key-0123456789"
    with Server(tmp_path, SENTIMENT_API_KEYS=key, SENTIMENT_LOG_LEVEL="warning") as server:
        browser.get(f"{server.base}/")
        browser.execute_script("sessionStorage.clear()")
        browser.get(f"{server.base}/")
        key_row = browser.find_element(By.ID, "key-row")
        WebDriverWait(browser, WAIT_S).until(lambda d: key_row.is_displayed())
        error = browser.find_element(By.ID, "error")
        WebDriverWait(browser, WAIT_S).until(lambda d: "(401)" in error.text)
        assert "API key" in error.text

        field = browser.find_element(By.ID, "api-key")
        field.send_keys(key)
        browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", field)
        WebDriverWait(browser, WAIT_S).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#model option")
        )
        assert not error.is_displayed()

        text = "Loved every minute of it."
        analyse(browser, server.base, text)  # reloads the page: the key stays in the tab
        assert browser.find_element(By.ID, "api-key").get_attribute("value") == key
        want = httpx.post(
            f"{server.base}/predict",
            json={"text": text},
            headers={"authorization": f"Bearer {key}"},
            timeout=10,
        ).json()["predictions"][0]["label"]
        assert browser.find_element(By.ID, "label").text.startswith(want)
        # One sentence cannot disagree with itself: no "mixed feelings" chip (the chip's
        # display: inline-block once overrode its hidden attribute).
        assert not browser.find_element(By.ID, "mixed").is_displayed()
        browser.execute_script("sessionStorage.clear()")
    browser.get_log("browser")
