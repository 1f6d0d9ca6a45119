import { api, t } from "/ui/static/ui.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const body = { email: form.email.value.trim(), password: form.password.value };
  try {
    await api("POST", "/api/auth/login", body);
    location.href = form.dataset.next || "/ui/";
  } catch (err) {
    error.textContent = err.status === 401 ? t("Wrong email or password.") : err.message;
    error.hidden = false;
    form.password.focus();
  }
});
