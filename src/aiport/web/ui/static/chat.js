// The app page: run the guided form / chat, stream the answer over SSE as it is typed,
// stop, regenerate, copy, the per-answer process panel, and conversation rename/delete.
// The user's message and an answer skeleton appear synchronously on submit (optimistic);
// if the server refuses, both are removed again and the error is shown (visible rollback).
import { api, ApiError, copyText, sseEvents, t, toast } from "/ui/static/ui.js";
import { renderMarkdown, escapeHtml } from "/ui/static/markdown.js";

const root = document.getElementById("app-root");
const slug = root.dataset.slug;
const form = document.getElementById("run-form");
const thread = document.getElementById("thread");
const input = document.getElementById("message");
const sendBtn = document.getElementById("send");
const stopBtn = document.getElementById("stop");
const errorBox = document.getElementById("run-error");
let conversationId = root.dataset.conversation || null;
let running = null; // { controller, bubble }
let answering = null; // { id, choice } — the open question whose "something else" the next message answers
const defaultPlaceholder = input.placeholder;

function formInputs() {
  const values = {};
  for (const field of document.querySelectorAll("#guided-form [data-field]")) {
    const name = field.dataset.field;
    const el = field.querySelector("input, select, textarea");
    const type = field.dataset.type;
    if (type === "toggle") values[name] = el.checked;
    else if (type === "number") {
      if (el.value !== "") values[name] = field.dataset.integer ? parseInt(el.value, 10) : Number(el.value);
    } else if (el.value !== "") values[name] = el.value;
  }
  return values;
}

function formSummary(values) {
  return Object.entries(values).map(([k, v]) => `${k}: ${typeof v === "string" && v.length > 60 ? v.slice(0, 60) + "…" : v}`).join(" · ");
}

function newMessage(role, text, status) {
  const tpl = document.getElementById("tpl-message").content.firstElementChild.cloneNode(true);
  tpl.className = `msg ${role}`;
  tpl.dataset.status = status;
  const md = tpl.querySelector("[data-md]");
  md.dataset.source = text;
  md.innerHTML = renderMarkdown(text);
  md.dataset.rendered = "1";
  if (role === "user") {
    tpl.querySelector(".actions")?.remove();
    tpl.querySelector(".process")?.remove();
  }
  thread.querySelector(".opening")?.remove();
  thread.append(tpl);
  return tpl;
}

function skeleton(bubble) {
  bubble.dataset.status = "pending";
  bubble.querySelector("[data-md]").innerHTML =
    `<span class="skeleton" aria-label="${escapeHtml(t("Answer is being written…"))}"><span></span><span></span><span></span></span>`;
}

function setText(bubble, text) {
  const md = bubble.querySelector("[data-md]");
  md.dataset.source = text;
  if (!bubble._frame) {
    bubble._frame = requestAnimationFrame(() => {
      bubble._frame = null;
      const html = renderMarkdown(md.dataset.source);
      const caret = bubble.dataset.status === "streaming" ? '<span class="caret" aria-hidden="true"></span>' : "";
      md.innerHTML = html.endsWith("</p>") ? html.slice(0, -4) + caret + "</p>" : html + caret;
    });
  }
}

function setBusy(on) {
  sendBtn.disabled = on;
  stopBtn.hidden = !on;
  form.setAttribute("aria-busy", on ? "true" : "false");
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function markConversation(id, title) {
  conversationId = id;
  root.dataset.conversation = id;
  const url = new URL(location.href);
  url.searchParams.set("c", id);
  window.history.replaceState(null, "", url);
  if (!document.querySelector(`#history li[data-id="${id}"]`)) {
    const li = document.createElement("li");
    li.dataset.id = id;
    li.className = "current";
    li.innerHTML = `<a class="conv-title" aria-current="page" href="/ui/apps/${encodeURIComponent(slug)}?c=${encodeURIComponent(id)}"></a>
      <span class="row-actions"><button type="button" class="icon-btn" data-action="rename" title="${escapeHtml(t("Rename"))}" aria-label="${escapeHtml(t("Rename"))}">✎</button>
      <button type="button" class="icon-btn" data-action="delete" title="${escapeHtml(t("Delete"))}" aria-label="${escapeHtml(t("Delete"))}">🗑</button></span>`;
    li.querySelector("a").textContent = title || id;
    document.getElementById("history").prepend(li);
    document.getElementById("history-empty").hidden = true;
  }
  const fieldset = document.getElementById("guided-form");
  if (fieldset) { fieldset.dataset.locked = "1"; fieldset.disabled = true; } // the form belongs to the first turn
  sendBtn.textContent = t("Send");
}

// Start a run and stream it into `bubble`. `rollback()` undoes the optimistic UI if the
// server refuses before the stream begins.
async function stream(url, body, bubble, rollback, title = "") {
  const controller = new AbortController();
  running = { controller, bubble };
  setBusy(true);
  showError("");
  let text = "";
  let response;
  try {
    response = await api("POST", url, { ...body, stream: true }, { raw: true, signal: controller.signal });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new ApiError(response.status, data);
    }
    bubble.dataset.status = "streaming";
    for await (const event of sseEvents(response)) {
      if (event.object === "app.run") {
        bubble.dataset.id = event.assistant_message_id;
        bubble.dataset.requestId = event.request_id;
        bubble.querySelector(".process").dataset.messageId = event.assistant_message_id;
        if (event.user_message_id) bubble.previousElementSibling?.setAttribute("data-id", event.user_message_id);
        if (event.conversation_id !== conversationId) markConversation(event.conversation_id, body.message || title);
      } else if (event.object === "app.run.clarification") {
        text = event.question;
        setText(bubble, text);
        showChoices(bubble, event);
      } else if (event.object === "app.run.end") {
        bubble.dataset.status = event.status;
        if (event.citations?.length) showSources(bubble, event.citations);
      } else if (event.error) {
        bubble.dataset.status = "error";
        showError(event.error.message);
      } else if (event.choices) {
        const piece = event.choices[0]?.delta?.content;
        if (piece) { text += piece; setText(bubble, text); }
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      bubble.dataset.status = "stopped";
    } else if (bubble.dataset.status === "pending") {
      rollback(err);
      running = null;
      setBusy(false);
      return;
    } else {
      bubble.dataset.status = "error";
      showError(err.message);
    }
  }
  if (bubble.dataset.status === "streaming") bubble.dataset.status = "complete";
  finish(bubble, text);
}

// The documents a grounded answer drew on, numbered as the answer cites them (also rendered by _message.html).
function showSources(bubble, citations) {
  bubble.querySelector(".sources")?.remove();
  const list = document.createElement("ol");
  list.className = "sources";
  list.setAttribute("aria-label", t("Sources"));
  for (const c of citations) {
    const li = document.createElement("li");
    li.value = c.number;
    li.title = c.snippet || "";
    const heading = c.heading || "";
    li.textContent = heading.startsWith(c.title) ? heading : heading ? `${c.title} — ${heading}` : c.title; // "Title > Section" already names it
    list.append(li);
  }
  bubble.querySelector("[data-md]").after(list);
}

// A question asked back: its choices as buttons under it (also rendered by _message.html).
function showChoices(bubble, clarification) {
  const box = document.createElement("div");
  box.className = "choices";
  box.dataset.clarification = clarification.id;
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", t("Pick one"));
  for (const c of clarification.choices) {
    const b = document.createElement("button");
    Object.assign(b, { type: "button", className: "chip", textContent: c.label });
    Object.assign(b.dataset, { action: "choose", choice: c.id, kind: c.kind });
    box.append(b);
  }
  bubble.querySelector("[data-md]").after(box);
}

function choose(button) {
  const box = button.closest(".choices");
  const id = box.dataset.clarification;
  if (button.dataset.kind === "other") { // say it in the message box; the next send answers
    answering = { id, choice: button.dataset.choice };
    input.placeholder = t("Say what you mean, then send.");
    input.focus();
    return;
  }
  box.hidden = true; // optimistic: the pick becomes the next turn
  const userBubble = newMessage("user", button.textContent, "complete");
  const bubble = newMessage("assistant", "", "pending");
  skeleton(bubble);
  bubble.scrollIntoView({ block: "end" });
  const rollback = (err) => { userBubble.remove(); bubble.remove(); box.hidden = false; toast(err.message, "error"); };
  stream(answerUrl(id), { choice: button.dataset.choice }, bubble, rollback); // the box stays hidden once answered
}

function answerUrl(clarificationId) {
  return `/api/conversations/${encodeURIComponent(conversationId)}/clarifications/${encodeURIComponent(clarificationId)}`;
}

function finish(bubble, text) {
  running = null;
  setBusy(false);
  const md = bubble.querySelector("[data-md]");
  md.dataset.source = text;
  md.innerHTML = renderMarkdown(text);
  const status = bubble.dataset.status;
  bubble.querySelector(".badge")?.remove();
  if (status === "stopped" || status === "error") {
    const badge = document.createElement("p");
    badge.className = `badge ${status === "error" ? "error" : ""}`;
    badge.textContent = status === "error" ? t("Failed") : t("Stopped");
    md.after(badge);
  }
  const details = bubble.querySelector(".process");
  if (details) { details.dataset.loaded = ""; if (details.open) loadProcess(details); }
  input.focus();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (running) return;
  const message = input.value.trim();
  const inputs = formInputs();
  if (conversationId && !message) { input.focus(); return; }
  // optimistic: the turn and a skeleton appear now, before any network
  const shown = message || formSummary(inputs) || "…";
  const userBubble = newMessage("user", shown, "complete");
  const bubble = newMessage("assistant", "", "pending");
  skeleton(bubble);
  bubble.scrollIntoView({ block: "end" });
  input.value = "";
  const rollback = (err) => {
    userBubble.classList.add("rolled-back");
    bubble.remove();
    setTimeout(() => userBubble.remove(), 600);
    input.value = message;
    const field = err.param?.startsWith("inputs.") ? document.getElementById("in-" + err.param.slice(7)) : null;
    showError(`${t("Your message was not sent:")} ${err.message}`);
    if (field) { document.querySelector("details.guided")?.setAttribute("open", ""); field.setAttribute("aria-invalid", "true"); field.focus(); }
  };
  if (conversationId && answering) { // "something else": this message answers the open question
    const { id, choice } = answering;
    answering = null;
    input.placeholder = defaultPlaceholder;
    document.querySelector(`.choices[data-clarification="${CSS.escape(id)}"]`)?.remove();
    stream(answerUrl(id), { choice, text: message }, bubble, rollback);
  } else if (conversationId) {
    stream(`/api/conversations/${encodeURIComponent(conversationId)}/messages`, { message }, bubble, rollback);
  } else {
    const body = { inputs, message: message || null, draft: root.dataset.draft === "true" };
    stream(`/api/apps/${encodeURIComponent(slug)}/runs`, body, bubble, rollback, shown);
  }
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
});

stopBtn.addEventListener("click", async () => {
  if (!running) return;
  const { controller } = running;
  stopBtn.disabled = true;
  try {
    if (conversationId) await api("POST", `/api/conversations/${encodeURIComponent(conversationId)}/stop`);
    else controller.abort();
  } catch { controller.abort(); }
  finally { stopBtn.disabled = false; }
});

thread.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const bubble = button.closest(".msg");
  const md = bubble.querySelector("[data-md]");
  if (button.dataset.action === "choose") { if (!running && conversationId) choose(button); return; }
  if (button.dataset.action === "copy") copyText(md.dataset.source ?? md.textContent);
  if (button.dataset.action === "regenerate") {
    if (running || !conversationId) return;
    const previous = { html: md.innerHTML, source: md.dataset.source, status: bubble.dataset.status };
    const last = thread.querySelector(".msg.assistant:last-of-type");
    const target = last === bubble ? bubble : thread.lastElementChild;
    skeleton(target);
    target.querySelector(".badge")?.remove();
    stream(`/api/conversations/${encodeURIComponent(conversationId)}/regenerate`, {}, target, (err) => {
      md.innerHTML = previous.html;
      md.dataset.source = previous.source;
      bubble.dataset.status = previous.status;
      toast(err.message, "error");
    });
  }
});

async function loadProcess(details) {
  const body = details.querySelector(".process-body");
  const id = details.dataset.messageId;
  if (!id || details.dataset.loaded === "1") return;
  body.textContent = "…";
  for (let attempt = 0; attempt < 12; attempt++) {
    try {
      const p = await api("GET", `/ui/api/messages/${encodeURIComponent(id)}/process`);
      if (p.ready) {
        details.dataset.loaded = "1";
        body.innerHTML = processHtml(p);
        return;
      }
    } catch (err) { body.textContent = err.message; return; }
    await new Promise((r) => setTimeout(r, 300));
  }
  body.textContent = t("Process details are not available yet.");
}

function processHtml(p) {
  const row = (k, v) => `<dt>${escapeHtml(t(k))}</dt><dd>${v}</dd>`;
  const ms = (v) => (v == null ? "—" : `${Math.round(v)} ms`);
  let html = "<dl>";
  html += row("Model", escapeHtml(p.model || "—"));
  html += row("Why this model", escapeHtml(p.route_reason || "—") + (p.route_score != null ? ` <span class="muted">(score ${p.route_score.toFixed(2)})</span>` : ""));
  html += row("Tokens", `${p.prompt_tokens} + ${p.completion_tokens} = <strong data-tokens>${p.total_tokens}</strong>`);
  html += row("Cost", `$${Number(p.cost_usd).toFixed(6)}`);
  html += row("Latency", ms(p.latency_ms));
  html += row("First token", ms(p.ttft_ms));
  html += row("Cache", escapeHtml(t(p.cache_hit ? "hit" : "miss")));
  html += row("Sources", p.sources.length ? p.sources.map(escapeHtml).join(", ") : escapeHtml(t("none")));
  html += row("Tools called", p.tools.length ? p.tools.map(escapeHtml).join(", ") : escapeHtml(t("none")));
  html += row("Request id", `<code>${escapeHtml(p.request_id)}</code>`);
  html += "</dl>";
  if (p.log_id) html += `<a href="/ui/admin/logs/${encodeURIComponent(p.log_id)}">${escapeHtml(t("Open the audit record"))}</a>`;
  return html;
}

thread.addEventListener("toggle", (event) => {
  if (event.target.matches?.("details.process") && event.target.open) loadProcess(event.target);
}, true);

for (const chip of document.querySelectorAll("[data-suggest]")) {
  chip.addEventListener("click", () => { input.value = chip.dataset.suggest; input.focus(); });
}

document.getElementById("history").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const li = button.closest("li");
  const id = li.dataset.id;
  const link = li.querySelector("a");
  if (button.dataset.action === "rename") {
    const title = prompt(t("New title"), link.textContent.trim());
    if (!title || !title.trim()) return;
    const before = link.textContent;
    link.textContent = title.trim(); // optimistic
    try { await api("PATCH", `/api/conversations/${encodeURIComponent(id)}`, { title: title.trim() }); }
    catch (err) { link.textContent = before; toast(err.message, "error"); }
  } else if (button.dataset.action === "delete") {
    if (!confirm(t("Delete this conversation?"))) return;
    li.hidden = true; // optimistic
    try {
      await api("DELETE", `/api/conversations/${encodeURIComponent(id)}`);
      li.remove();
      if (id === conversationId) location.href = `/ui/apps/${encodeURIComponent(slug)}`;
    } catch (err) { li.hidden = false; toast(err.message, "error"); }
  }
});
