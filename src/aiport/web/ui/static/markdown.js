// Safe Markdown: the text is HTML-escaped FIRST, then a small set of Markdown forms becomes
// our own tags. Nothing the model writes can become an element or an attribute of its own.

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

function inline(s) {
  // s is already escaped; code spans first so their content is left alone
  const codes = [];
  s = s.replace(/`([^`\n]+)`/g, (_, c) => { codes.push(c); return `\u0000${codes.length - 1}\u0000`; });
  s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
  s = s.replace(/(^|[^*])\*([^*\n]+)\*(?!\*)/g, "$1<em>$2</em>");
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)/g, (_, text, url) =>
    `<a href="${url}" rel="noopener noreferrer nofollow" target="_blank">${text}</a>`);
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => `<code>${codes[Number(i)]}</code>`);
}

function blocks(text) {
  const out = [];
  let list = null; // "ul" | "ol"
  let para = [];
  const flushPara = () => { if (para.length) { out.push(`<p>${inline(para.join("<br>"))}</p>`); para = []; } };
  const closeList = () => { if (list) { out.push(`</${list}>`); list = null; } };
  for (const line of text.split("\n")) {
    let m;
    if (!line.trim()) { flushPara(); closeList(); continue; }
    if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
      flushPara(); closeList();
      const level = Math.min(m[1].length + 2, 6); // inside a bubble, h3..h6
      out.push(`<h${level}>${inline(m[2])}</h${level}>`);
    } else if ((m = line.match(/^\s*[-*+]\s+(.*)$/)) || (m = line.match(/^\s*\d+[.)]\s+(.*)$/))) {
      flushPara();
      const kind = /^\s*\d/.test(line) ? "ol" : "ul";
      if (list !== kind) { closeList(); out.push(`<${kind}>`); list = kind; }
      out.push(`<li>${inline(m[1])}</li>`);
    } else if ((m = line.match(/^&gt;\s?(.*)$/))) {
      flushPara(); closeList();
      out.push(`<blockquote>${inline(m[1])}</blockquote>`);
    } else {
      closeList();
      para.push(line);
    }
  }
  flushPara(); closeList();
  return out.join("");
}

export function renderMarkdown(source) {
  const text = escapeHtml(source || "");
  const parts = [];
  const fence = /```([\w+-]*)\n?([\s\S]*?)(```|$)/g;
  let last = 0;
  let m;
  while ((m = fence.exec(text)) !== null) {
    if (m.index > last) parts.push(blocks(text.slice(last, m.index)));
    const lang = m[1] ? ` class="lang-${m[1]}"` : "";
    parts.push(`<pre><code${lang}>${m[2]}</code></pre>`);
    last = fence.lastIndex;
    if (m[0].length === 0) break;
  }
  if (last < text.length) parts.push(blocks(text.slice(last)));
  return parts.join("");
}

// Render every [data-md] element from its text (the server sent it escaped, as text).
export function renderAll(root = document) {
  for (const el of root.querySelectorAll("[data-md]")) {
    if (el.dataset.rendered) continue;
    const src = el.textContent;
    el.dataset.source = src;
    el.innerHTML = renderMarkdown(src);
    el.dataset.rendered = "1";
  }
}
