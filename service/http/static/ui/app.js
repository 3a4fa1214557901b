// The page at /: one review in, its label, probabilities, sentences and word weights out.
// Everything the API returns is put into the page with textContent / createTextNode
// only: a review is shown as text, never parsed as HTML. Offsets from the API are
// Unicode code points, so the text is sliced as an array of code points, not as
// JavaScript's UTF-16 string (an emoji is one code point but two UTF-16 units).
"use strict";

const $ = (id) => document.getElementById(id);
const RGB = { positive: [22, 163, 74], negative: [220, 38, 38] };
const OTHER_RGB = [37, 99, 235];
const AGAINST_RGB = [100, 116, 139];
const STRONG = 0.25; // share of the largest |weight| from which a word counts as highlighted

let labelsOfModel = {}; // model name -> its labels (GET /models)
const KEY_STORE = "sentiment-api-key"; // sessionStorage: this tab only, gone when it closes

function rgb(label) {
  return RGB[label] || OTHER_RGB;
}

function rgba([r, g, b], alpha) {
  return `rgba(${r}, ${g}, ${b}, ${alpha.toFixed(3)})`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

// -- the API ------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// With SENTIMENT_API_KEYS set, every call needs a key: asked for on the first 401.
function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

async function api(path, body) {
  const headers = { accept: "application/json" };
  if (apiKey()) headers.authorization = `Bearer ${apiKey()}`;
  const init =
    body === undefined
      ? { headers }
      : {
          method: "POST",
          headers: { ...headers, "content-type": "application/json" },
          body: JSON.stringify(body),
        };
  let response;
  if (/[^\x20-\x7e]/.test(apiKey())) {
    // fetch cannot send other characters in a header: say so, not "cannot be reached".
    $("key-row").hidden = false;
    throw new ApiError("An API key here must be printable ASCII: re-enter it above.");
  }
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(`The service cannot be reached (${err.message}).`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null; // not JSON: described by its status below
  }
  if (response.status === 401) $("key-row").hidden = false;
  if (!response.ok) throw new ApiError(describeError(response, data), response.status);
  return data;
}

// A readable message for an API error: what happened, the service's own words, and
// for 503 when to try again (Retry-After).
function describeError(response, data) {
  const error = (data && data.error) || {};
  const said = error.message || response.statusText || "no details";
  const status = response.status;
  let text;
  if (status === 422) text = `The service refused this text (422): ${said}`;
  else if (status === 401) text = `This service needs an API key (401): enter one above. ${said}`;
  else if (status === 503) {
    const wait = response.headers.get("retry-after");
    text = `The service is busy or not ready (503): ${said}`;
    if (wait) text += `\nTry again in ${wait} s (Retry-After).`;
  } else if (status === 504) text = `The service took too long (504): ${said}`;
  else if (status === 413) text = `The text is too large (413): ${said}`;
  else text = `The service answered ${status}${error.code ? ` (${error.code})` : ""}: ${said}`;
  if (data && data.request_id) text += `\nRequest id: ${data.request_id}`;
  return text;
}

// -- models -------------------------------------------------------------------------------
async function loadModels() {
  const select = $("model");
  let models;
  let chosen;
  try {
    const data = await api("models");
    models = data.models;
    chosen = data.default;
  } catch (err) {
    if (err.status === 401) throw err;
    const single = await api("model"); // a service without GET /models
    models = [single];
    chosen = single.name;
  }
  select.replaceChildren();
  for (const model of models) {
    const ready = (model.status || "ready") === "ready";
    const option = el("option", "", ready ? `${model.name} (${model.version})` : `${model.name} (not ready)`);
    option.value = model.name;
    option.disabled = !ready;
    select.append(option);
    labelsOfModel[model.name] = model.labels || [];
  }
  // The default if it is ready, else the first model that is (a disabled option can be
  // selected by script, and would only earn a 503).
  const usable = [...select.options].filter((o) => !o.disabled).map((o) => o.value);
  if (usable.length) select.value = usable.includes(chosen) ? chosen : usable[0];
  else if (chosen) select.value = chosen;
  showModelInfo();
}

function showModelInfo() {
  const labels = labelsOfModel[$("model").value] || [];
  $("model-info").textContent = labels.length ? `labels: ${labels.join(", ")}` : "";
}

// -- rendering ----------------------------------------------------------------------------
function renderPrediction(prediction) {
  const label = $("label");
  label.textContent = `${prediction.label}`;
  label.style.backgroundColor = rgba(rgb(prediction.label), 1);
  label.dataset.label = prediction.label;
  $("mixed").hidden = !prediction.mixed;
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(prediction.probabilities)) {
    const fill = el("div", "bar-fill");
    fill.style.width = percent(p);
    fill.style.backgroundColor = rgba(rgb(name), 0.9);
    const track = el("div", "bar-track");
    track.append(fill);
    track.dataset.label = name;
    track.title = `P(${name}) = ${p.toFixed(4)}`;
    bars.append(el("span", "bar-name", name), track, el("span", "bar-value", percent(p)));
  }
}

function renderSentences(sentences) {
  const list = $("sentences");
  list.replaceChildren();
  for (const s of sentences || []) {
    const item = el("li");
    const confidence = s.probabilities[s.label];
    item.style.borderLeftColor = rgba(rgb(s.label), 1);
    item.style.backgroundColor = rgba(rgb(s.label), 0.06 + 0.16 * confidence);
    item.dataset.label = s.label;
    item.dataset.start = s.start;
    item.dataset.end = s.end;
    const chip = el("span", "chip", `${s.label} ${percent(confidence)}`);
    chip.style.backgroundColor = rgba(rgb(s.label), 1);
    item.append(el("span", "sentence-text", s.text), chip);
    list.append(item);
  }
}

// Tokens whose spans overlap (one character folded into several tokens, like "½") are
// shown as one word, with their weights summed.
function wordGroups(tokens) {
  const groups = [];
  for (const t of tokens) {
    const last = groups[groups.length - 1];
    if (last && t.start < last.end) {
      last.end = Math.max(last.end, t.end);
      last.weight += t.weight;
      last.tokens.push(t.token);
    } else {
      groups.push({ start: t.start, end: t.end, weight: t.weight, tokens: [t.token] });
    }
  }
  return groups;
}

function againstColour(target, labels) {
  const others = labels.filter((l) => l !== target);
  return others.length === 1 ? rgb(others[0]) : AGAINST_RGB;
}

function renderWords(text, explained) {
  const words = $("words");
  words.replaceChildren();
  const labels = Object.keys(explained.prediction.probabilities);
  const towards = rgb(explained.target);
  const against = againstColour(explained.target, labels);
  const points = Array.from(text); // code points: the API's offsets index these
  const groups = wordGroups(explained.tokens);
  const largest = Math.max(1e-9, ...groups.map((g) => Math.abs(g.weight)));
  let at = 0;
  for (const g of groups) {
    if (g.start > at) words.append(document.createTextNode(points.slice(at, g.start).join("")));
    const span = el("span", "tok", points.slice(g.start, g.end).join(""));
    const share = Math.abs(g.weight) / largest;
    span.style.backgroundColor = rgba(g.weight >= 0 ? towards : against, 0.85 * share);
    if (share >= STRONG) span.classList.add("strong");
    span.dataset.start = g.start;
    span.dataset.end = g.end;
    span.dataset.weight = g.weight;
    const sign = g.weight >= 0 ? "+" : "";
    const direction = g.weight >= 0 ? "towards" : "against";
    span.title = `${g.tokens.join(" ")}: ${sign}${g.weight.toFixed(4)} (${direction} ${explained.target})`;
    words.append(span);
    at = Math.max(at, g.end);
  }
  if (at < points.length) words.append(document.createTextNode(points.slice(at).join("")));
  renderLegend(explained.target, towards, against);
}

function renderLegend(target, towards, against) {
  const legend = $("legend");
  legend.replaceChildren();
  const swatch = (colour) => {
    const box = el("span", "swatch");
    box.style.backgroundColor = rgba(colour, 0.85);
    return box;
  };
  legend.append(
    "Each word's weight: how much P(" + target + ") falls when the word is left out. ",
    swatch(towards),
    `towards ${target}`,
    swatch(against),
    `against ${target}. Hover a word for its weight.`,
  );
}

// -- the form -----------------------------------------------------------------------------
function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy, message) {
  $("submit").disabled = busy;
  $("status").textContent = message || "";
  document.body.dataset.state = busy ? "busy" : "idle";
}

async function analyse(event) {
  event.preventDefault();
  try {
    await analyseText($("text").value);
  } catch (err) {
    // A bug of this page, not an API error: say so rather than stay "Analysing…".
    $("result").hidden = true;
    showError(`The page could not show the answer: ${err.message}`);
    setBusy(false, "");
  }
}

async function analyseText(text) {
  const body = { text };
  if ($("model").value) body.model = $("model").value;
  setBusy(true, "Analysing…");
  showError("");
  const [predicted, explained] = await Promise.allSettled([
    api("predict", { ...body, sentences: true }),
    api("explain", body),
  ]);
  if (predicted.status === "rejected") {
    $("result").hidden = true;
    showError(predicted.reason.message);
    setBusy(false, "");
    return;
  }
  const prediction = predicted.value.predictions[0];
  renderPrediction(prediction);
  renderSentences(prediction.sentences);
  const wordsError = $("words-error");
  if (explained.status === "fulfilled") {
    renderWords(text, explained.value);
    wordsError.hidden = true;
  } else {
    $("words").replaceChildren();
    $("legend").replaceChildren();
    wordsError.textContent = explained.reason.message;
    wordsError.hidden = false;
  }
  $("result").hidden = false;
  const model = predicted.value.model;
  setBusy(false, `${model.name} ${model.version}`);
  document.body.dataset.state = "done";
}

function listModels() {
  showError("");
  loadModels().catch((err) => showError(`Could not list the models. ${err.message}`));
}

function useKey() {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  listModels();
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", analyse);
  $("model").addEventListener("change", showModelInfo);
  $("api-key").addEventListener("change", useKey);
  if (apiKey()) {
    $("api-key").value = apiKey();
    $("key-row").hidden = false;
  }
  listModels();
});
