// The chat page of `langchain-steer serve`: the paper's three ways to steer (SELECT, CALIBRATE, LEARN).
// Plain JavaScript, no build step; it talks only to this server's own API (docs/server.md).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { user: "", key: "", dimensions: [], values: {}, history: [], busy: false, saveTimer: null };

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  return h;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not an error object */ }
    throw new Error(message);
  }
  return response;
}

function say(text) { $("status").textContent = text; }

function mode() { return document.querySelector("input[name=mode]:checked").value; }

function format(value) { return (value > 0 ? "+" : value < 0 ? "\u2212" : "") + Math.abs(value).toFixed(2); }

function describe(dimension, value) {
  const [negative, positive] = dimension.poles;
  if (Math.abs(value) < 0.005) return `${dimension.name} 0, neutral`;
  return `${dimension.name} ${format(value)}, toward ${value < 0 ? negative : positive}`;
}

// -- sliders (SELECT, and where CALIBRATE and LEARN put their results) ---------------------------------
function renderSliders() {
  const box = $("sliders");
  box.replaceChildren();
  for (const dimension of state.dimensions) {
    const id = `slider-${dimension.name}`;
    const row = document.createElement("div");
    row.className = "slider";
    row.innerHTML = `
      <label class="name" for="${id}"><span>${dimension.name}</span>
        <output id="${id}-value" for="${id}"></output></label>
      <input type="range" id="${id}" min="-1" max="1" step="0.05" list="${id}-ticks"
        aria-describedby="${id}-poles">
      <datalist id="${id}-ticks"><option value="-1"></option><option value="0"></option>
        <option value="1"></option></datalist>
      <div class="zero" aria-hidden="true">0</div>
      <div class="poles" id="${id}-poles"><span>\u2212 ${dimension.poles[0]}</span>
        <button type="button" class="reset" aria-label="Reset ${dimension.name} to 0">reset</button>
        <span>${dimension.poles[1]} +</span></div>`;
    box.append(row);
    const input = row.querySelector("input");
    input.addEventListener("input", () => { setValue(dimension.name, Number(input.value)); });
    input.addEventListener("change", () => { savePreferences(); });
    row.querySelector(".reset").addEventListener("click", () => {
      setValue(dimension.name, 0);
      savePreferences();
    });
  }
  for (const dimension of state.dimensions) setValue(dimension.name, state.values[dimension.name] || 0);
}

function setValue(name, value) {
  const dimension = state.dimensions.find((d) => d.name === name);
  if (!dimension) return;
  const rounded = Math.round(value * 100) / 100;
  state.values[name] = rounded;
  const input = $(`slider-${name}`);
  input.value = String(rounded);
  input.setAttribute("aria-valuetext", describe(dimension, rounded));
  $(`slider-${name}-value`).textContent = format(rounded);
}

function setAll(preferences) {
  for (const dimension of state.dimensions) setValue(dimension.name, preferences[dimension.name] || 0);
}

function savePreferences() {
  clearTimeout(state.saveTimer);
  state.saveTimer = setTimeout(async () => {
    try {
      await api(`v1/users/${encodeURIComponent(state.user)}/preferences`, {
        method: "PUT", body: JSON.stringify({ preferences: state.values }),
      });
      say("Preferences saved.");
    } catch (error) { say(`Could not save: ${error.message}`); }
  }, 250);
}

function replyLength() {
  const value = Number($("max-tokens").value);
  return Number.isInteger(value) && value >= 8 && value <= 512 ? value : 160;
}

function steering() {
  const nonzero = {};
  for (const [name, value] of Object.entries(state.values)) if (value) nonzero[name] = value;
  return nonzero;
}

// -- chat ------------------------------------------------------------------------------------------
function addMessage(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? state.user : "assistant";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(who, body);
  $("log").append(item);
  $("log").scrollTop = $("log").scrollHeight;
  return body;
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["send", "calibrate-start", "prefer-a", "prefer-b", "prefer-same"]) $(id).disabled = busy;
}

async function send(event) {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text || state.busy) return;
  $("message").value = "";
  state.history.push({ role: "user", content: text });
  addMessage("user", text);
  const output = addMessage("assistant", "");
  const learn = mode() === "learn";
  const body = {
    model: "default", messages: state.history, stream: true, stream_options: { include_usage: true },
    user: state.user, max_tokens: replyLength(),
  };
  if (learn) body.preference_mode = "learn";
  else body.steering = steering();
  setBusy(true);
  say("Answering\u2026");
  try {
    const response = await api("v1/chat/completions", { method: "POST", body: JSON.stringify(body) });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "", reply = "", learned = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && delta.content) {
          reply += delta.content;
          output.textContent = reply;
          $("log").scrollTop = $("log").scrollHeight;
        }
        if (chunk.learned) learned = chunk.learned;
      }
    }
    state.history.push({ role: "assistant", content: reply });
    if (learn) await showLearned(learned || []);
    say("");
  } catch (error) {
    output.textContent = `(error: ${error.message})`;
    say(error.message);
  } finally {
    setBusy(false);
    $("message").focus();
  }
}

// -- LEARN -------------------------------------------------------------------------------------------
async function showLearned(changes) {
  const response = await api(`v1/users/${encodeURIComponent(state.user)}/preferences`);
  setAll((await response.json()).preferences);
  const list = $("learned-list");
  for (const change of changes) {
    const item = document.createElement("li");
    const because = change.because ? `\u201c${change.because}\u201d \u2192 ` : "cleared: ";
    item.textContent = `${because}${change.dimension} ${format(change.after)}`;
    item.dataset.dimension = change.dimension;
    list.prepend(item);
  }
  if (!changes.length && !list.children.length) {
    const item = document.createElement("li");
    item.textContent = "Nothing yet: tell the assistant about yourself.";
    item.className = "empty";
    list.append(item);
  } else {
    for (const empty of list.querySelectorAll(".empty")) empty.remove();
  }
}

// -- CALIBRATE ---------------------------------------------------------------------------------------
let session = null;

function showRound(round) {
  if (round.done) {
    session = null;
    setAll(round.preferences);
    $("choices").hidden = true;
    $("prefer-same").hidden = true;
    const names = Object.entries(round.preferences).filter(([, v]) => v).map(([n, v]) => `${n} ${format(v)}`);
    $("calibrate-round").textContent = `Done. Your sliders: ${names.join(", ") || "all neutral"}.`;
    return;
  }
  session = round.session;
  $("calibrate-round").textContent =
    `${round.dimension}: question ${round.round} of ${round.rounds}. Which answer fits you better?`;
  $("choice-a").textContent = round.A;
  $("choice-b").textContent = round.B;
  $("choices").hidden = false;
  $("prefer-same").hidden = false;
  $("prefer-a").focus();
}

async function startCalibration() {
  const typed = $("message").value.trim();
  const last = [...state.history].reverse().find((m) => m.role === "user");
  const text = typed || (last && last.content) || "Plan a dinner for Saturday.";
  const dimensions = [...document.querySelectorAll("input[name=calibrate-dimension]:checked")].map((i) => i.value);
  setBusy(true);
  say("Preparing two answers\u2026");
  try {
    const response = await api(`v1/users/${encodeURIComponent(state.user)}/calibration`, {
      method: "POST",
      body: JSON.stringify({
        messages: [{ role: "user", content: text }], dimensions, rounds: 2, max_tokens: Math.min(replyLength(), 120),
      }),
    });
    showRound(await response.json());
    say("");
  } catch (error) { say(error.message); } finally { setBusy(false); }
}

async function choose(choice) {
  if (!session || state.busy) return;
  setBusy(true);
  say("Thanks. Preparing the next pair\u2026");
  try {
    const response = await api(
      `v1/users/${encodeURIComponent(state.user)}/calibration/${session}`,
      { method: "POST", body: JSON.stringify({ choice }) },
    );
    showRound(await response.json());
    say("");
  } catch (error) { say(error.message); } finally { setBusy(false); }
}

function renderCalibrateDimensions() {
  const box = document.createElement("fieldset");
  box.id = "calibrate-dimensions";
  box.innerHTML = "<legend>Dimensions to calibrate</legend>";
  for (const dimension of state.dimensions) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" name="calibrate-dimension" value="${dimension.name}" checked> ${dimension.name}`;
    box.append(label, " ");
  }
  const old = $("calibrate-dimensions");
  if (old) old.replaceWith(box); else $("calibrate-start").before(box);
}

// -- start -----------------------------------------------------------------------------------------
function showMode() {
  const current = mode();
  $("calibrate").hidden = current !== "calibrate";
  $("learned").hidden = current !== "learn";
  document.body.dataset.mode = current;
}

async function signIn(event) {
  if (event) event.preventDefault();
  const name = $("user-name").value.trim();
  if (!$("user-name").checkValidity() || !name) { say("Enter a name: letters, digits, . _ @ or -."); return; }
  state.user = name;
  state.key = $("api-key").value;
  localStorage.setItem("steer-user", state.user);
  localStorage.setItem("steer-key", state.key);
  try {
    const dims = await (await api("v1/steering/dimensions")).json();
    state.dimensions = dims.data.map((d) => ({ ...d, poles: [d.poles.negative, d.poles.positive] }));
    const prefs = await (await api(`v1/users/${encodeURIComponent(state.user)}/preferences`)).json();
    state.values = { ...prefs.preferences };
    renderSliders();
    renderCalibrateDimensions();
    $("app").hidden = false;
    say(`Signed in as ${state.user}.`);
    $("message").focus();
  } catch (error) { say(`Could not start: ${error.message}`); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("user-name").value = localStorage.getItem("steer-user") || "";
  $("api-key").value = localStorage.getItem("steer-key") || "";
  $("who").addEventListener("submit", signIn);
  $("composer").addEventListener("submit", send);
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", showMode);
  $("reset-all").addEventListener("click", async () => {
    try {
      await api(`v1/users/${encodeURIComponent(state.user)}/preferences`, { method: "DELETE" });
      setAll({});
      $("learned-list").replaceChildren();
      say("Preferences reset.");
    } catch (error) { say(error.message); }
  });
  $("calibrate-start").addEventListener("click", startCalibration);
  $("prefer-a").addEventListener("click", () => choose("A"));
  $("prefer-b").addEventListener("click", () => choose("B"));
  $("prefer-same").addEventListener("click", () => choose("same"));
  showMode();
  if ($("user-name").value) signIn();
});
