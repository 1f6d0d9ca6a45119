// Shared by every page: translations, API calls with the session's CSRF token, toasts,
// logout, list filtering, range outputs and Markdown rendering.
import { renderAll } from "/ui/static/markdown.js";

const words = JSON.parse(document.getElementById("i18n")?.textContent || "{}");
export const t = (text) => words[text] || text;

export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)aiport_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.param = body?.error?.param;
  }
}

export async function api(method, url, body, { raw = false, signal } = {}) {
  const headers = { "x-csrf-token": csrfToken() };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin", signal,
  });
  if (raw) return res;
  if (res.status === 401 && !url.startsWith("/api/auth/")) { location.href = `/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`; }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Server-sent events from a fetch response body, as parsed JSON objects.
export async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (!data || data === "[DONE]") continue;
      yield JSON.parse(data);
    }
  }
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = message;
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 3000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(t("Copied"));
}

function wireFilters() {
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const list = document.querySelector(input.dataset.filter);
    const empty = document.querySelector(input.dataset.filter + "-empty");
    input.addEventListener("input", () => {
      const q = input.value.trim().toLowerCase();
      let shown = 0;
      for (const item of list.children) {
        const hit = !q || (item.dataset.search || item.textContent.toLowerCase()).includes(q);
        item.hidden = !hit;
        if (hit) shown++;
      }
      if (empty) empty.hidden = shown > 0;
    });
  }
}

function wireRanges() {
  for (const range of document.querySelectorAll('input[type="range"]')) {
    const out = range.parentElement.querySelector("output");
    if (out) range.addEventListener("input", () => { out.textContent = range.value; });
  }
}

document.getElementById("logout")?.addEventListener("click", async () => {
  try { await api("POST", "/api/auth/logout"); } finally { location.href = "/ui/login"; }
});
wireFilters();
wireRanges();
renderAll();
