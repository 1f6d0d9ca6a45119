// Admin screens: forms and buttons that call the JSON API (data-api="METHOD /url/{field}"),
// then reload; a created API key is shown once in a dialog.
import { api, copyText, toast } from "/ui/static/ui.js";

function fill(url, values) {
  return url.replace(/\{(\w+)\}/g, (_, name) => { const v = values[name]; delete values[name]; return encodeURIComponent(v ?? ""); });
}

function showSecret(secret) {
  const dialog = document.getElementById("secret-dialog");
  document.getElementById("secret-value").textContent = secret;
  document.getElementById("secret-copy").onclick = () => copyText(secret);
  document.getElementById("secret-close").onclick = () => { dialog.close(); location.reload(); };
  dialog.showModal();
}

for (const form of document.querySelectorAll("form[data-api]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [method, template] = form.dataset.api.split(" ");
    const values = {};
    for (const el of form.querySelectorAll("[name]")) {
      if (el.value === "") continue;
      values[el.name] = el.hasAttribute("data-number") ? Number(el.value) : el.value;
    }
    const url = fill(template, values);
    try {
      const result = await api(method, url, values);
      if (form.dataset.result === "secret") showSecret(result.key);
      else location.reload();
    } catch (err) {
      const field = err.param && form.querySelector(`[name="${err.param}"]`);
      if (field) { field.setAttribute("aria-invalid", "true"); field.focus(); }
      toast(err.message, "error");
    }
  });
}

for (const button of document.querySelectorAll("button[data-api]")) {
  button.addEventListener("click", async () => {
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
    const [method, url] = button.dataset.api.split(" ");
    try { await api(method, url); location.reload(); } catch (err) { toast(err.message, "error"); }
  });
}
