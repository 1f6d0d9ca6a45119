// The no-code editor: every field of an app, variables, sharing; save the draft, publish,
// and test-run the draft (streamed). "Describe an app" fills the same editor with a draft.
import { api, sseEvents, t, toast } from "/ui/static/ui.js";
import { renderMarkdown } from "/ui/static/markdown.js";

const data = JSON.parse(document.getElementById("builder-data").textContent);
const editor = document.getElementById("editor");
const varsBox = document.getElementById("variables");
const errorBox = document.getElementById("editor-error");
let slug = data.slug || null;
let definition = data.definition;
let varSeq = 0;

const field = (name) => editor.elements[name];

function addVariable(v = {}) {
  const row = document.getElementById("tpl-var").content.firstElementChild.cloneNode(true);
  const id = `var-${varSeq++}`;
  for (const el of row.querySelectorAll("[data-key]")) {
    el.id = `${id}-${el.dataset.key}`;
    const label = row.querySelector(`label[data-for="${el.dataset.key}"]`);
    if (label) label.htmlFor = el.id;
    const value = v[el.dataset.key];
    if (el.type === "checkbox") el.checked = !!value;
    else if (Array.isArray(value)) el.value = value.join(", ");
    else if (value !== undefined && value !== null) el.value = String(value);
  }
  row.querySelector("[data-remove]").addEventListener("click", () => { row.remove(); renderTestFields(); });
  row.addEventListener("input", renderTestFields);
  varsBox.append(row);
}

function fill(defn, sharing) {
  definition = defn;
  for (const key of ["name", "slug", "description", "icon", "kind", "model", "system_prompt", "prompt_template", "opening_message"]) {
    if (field(key) && defn[key] !== undefined) field(key).value = defn[key];
  }
  field("suggested_questions").value = (defn.suggested_questions || []).join("\n");
  field("temperature").value = defn.params?.temperature ?? "";
  field("max_tokens").value = defn.params?.max_tokens ?? "";
  if (sharing) {
    field("visibility").value = sharing.visibility;
    for (const box of editor.querySelectorAll('input[name="team_ids"]')) box.checked = sharing.team_ids.includes(box.value);
  }
  varsBox.replaceChildren();
  for (const v of defn.variables || []) addVariable(v);
  renderTestFields();
}

function collectVariables() {
  return [...varsBox.children].map((row) => {
    const get = (k) => row.querySelector(`[data-key="${k}"]`);
    const v = { name: get("name").value.trim(), label: get("label").value.trim(), type: get("type").value, required: get("required").checked };
    if (get("help").value.trim()) v.help = get("help").value.trim();
    if (v.type === "select") v.options = get("options").value.split(",").map((o) => o.trim()).filter(Boolean);
    if (v.type === "number") {
      if (get("min").value !== "") v.min = Number(get("min").value);
      if (get("max").value !== "") v.max = Number(get("max").value);
    }
    const d = get("default").value.trim();
    if (d !== "") v.default = v.type === "number" ? Number(d) : v.type === "toggle" ? d === "true" : d;
    return v;
  });
}

function collect() {
  const params = { ...(definition.params || {}) };
  for (const [key, name] of [["temperature", "temperature"], ["max_tokens", "max_tokens"]]) {
    const value = field(name).value;
    if (value === "") delete params[key]; else params[key] = Number(value);
  }
  return {
    ...definition,
    name: field("name").value.trim(), slug: field("slug").value.trim(), description: field("description").value,
    icon: field("icon").value || "✨", kind: field("kind").value, model: field("model").value,
    system_prompt: field("system_prompt").value, prompt_template: field("prompt_template").value,
    opening_message: field("opening_message").value,
    suggested_questions: field("suggested_questions").value.split("\n").map((q) => q.trim()).filter(Boolean),
    variables: collectVariables(), params,
  };
}

function sharing() {
  return {
    visibility: field("visibility").value,
    team_ids: [...editor.querySelectorAll('input[name="team_ids"]:checked')].map((b) => b.value),
  };
}

function showError(err) {
  errorBox.textContent = err ? err.message : "";
  errorBox.hidden = !err;
}

async function save() {
  showError(null);
  const body = { definition: collect(), sharing: sharing() };
  if (slug) {
    await api("PATCH", `/api/apps/${encodeURIComponent(slug)}`, body);
  } else {
    const created = await api("POST", "/api/apps", body);
    slug = created.slug;
    history.replaceState(null, "", `/ui/build/${encodeURIComponent(slug)}`);
    field("slug").readOnly = true;
    document.getElementById("publish").hidden = false;
  }
  toast(t("Saved."));
}

editor.addEventListener("submit", async (event) => {
  event.preventDefault();
  try { await save(); } catch (err) { showError(err); }
});

document.getElementById("publish").addEventListener("click", async () => {
  try {
    await save();
    const version = await api("POST", `/api/apps/${encodeURIComponent(slug)}/publish`, {});
    toast(`${t("Published version")} v${version.number}`);
  } catch (err) { showError(err); }
});

document.getElementById("add-var").addEventListener("click", () => {
  addVariable({ type: "short_text" });
  varsBox.lastElementChild.querySelector('[data-key="name"]').focus();
});

function renderTestFields() {
  const box = document.getElementById("test-fields");
  const previous = Object.fromEntries([...box.querySelectorAll("[data-name]")].map((el) => [el.dataset.name, el.type === "checkbox" ? el.checked : el.value]));
  box.replaceChildren();
  for (const v of collectVariables()) {
    if (!v.name) continue;
    const id = `test-${v.name}`;
    const wrap = document.createElement("div");
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = v.label || v.name;
    let input;
    if (v.type === "select") {
      input = document.createElement("select");
      for (const o of v.options || []) input.append(new Option(o, o));
    } else if (v.type === "long_text") {
      input = document.createElement("textarea");
      input.rows = 2;
    } else {
      input = document.createElement("input");
      input.type = v.type === "number" ? "number" : v.type === "toggle" ? "checkbox" : "text";
    }
    input.id = id;
    input.dataset.name = v.name;
    input.dataset.type = v.type;
    const value = previous[v.name] ?? v.default;
    if (input.type === "checkbox") input.checked = !!value; else if (value !== undefined) input.value = value;
    wrap.append(label, input);
    box.append(wrap);
  }
}

function testInputs() {
  const values = {};
  for (const el of document.querySelectorAll("#test-fields [data-name]")) {
    if (el.type === "checkbox") values[el.dataset.name] = el.checked;
    else if (el.value !== "") values[el.dataset.name] = el.dataset.type === "number" ? Number(el.value) : el.value;
  }
  return values;
}

document.getElementById("test-run").addEventListener("click", async () => {
  const out = document.getElementById("test-output");
  const button = document.getElementById("test-run");
  button.disabled = true;
  out.innerHTML = '<span class="skeleton"><span></span><span></span><span></span></span>';
  try {
    await save();
    const message = document.getElementById("test-message").value.trim() || null;
    const res = await api("POST", `/api/apps/${encodeURIComponent(slug)}/runs`, { inputs: testInputs(), message, draft: true, stream: true }, { raw: true });
    if (!res.ok) { const body = await res.json().catch(() => null); throw new Error(body?.error?.message || `HTTP ${res.status}`); }
    let text = "";
    for await (const event of sseEvents(res)) {
      const piece = event.choices?.[0]?.delta?.content;
      if (piece) { text += piece; out.innerHTML = renderMarkdown(text); }
      if (event.error) throw new Error(event.error.message);
    }
  } catch (err) {
    out.textContent = err.message;
    showError(err);
  } finally { button.disabled = false; }
});

const describe = document.getElementById("describe-form");
describe?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const status = document.getElementById("draft-status");
  const button = document.getElementById("draft-btn");
  button.disabled = true;
  status.textContent = t("Drafting…");
  status.classList.remove("error");
  try {
    const draft = await api("POST", "/api/apps/builder/draft", { description: describe.description.value });
    fill(draft.definition, null);
    document.getElementById("builder").hidden = false;
    status.textContent = draft.repairs?.length ? draft.repairs.join("; ") : "";
    field("name").focus();
  } catch (err) {
    status.textContent = err.message;
    status.classList.add("error");
  } finally { button.disabled = false; }
});

const teamsBox = document.getElementById("e-teams");
const syncTeams = () => { teamsBox.hidden = field("visibility").value !== "teams"; };
field("visibility").addEventListener("change", syncTeams);

fill(definition, data.sharing);
syncTeams();
