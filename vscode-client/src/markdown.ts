// Markdown for the chat view: markdown-it with raw HTML off (a model's answer can never
// inject markup or script into the webview; its CSP allows only our own script as well),
// and every fenced code block wrapped with Copy and Insert buttons.
import MarkdownIt from "markdown-it";

const md = new MarkdownIt({ html: false, linkify: true, breaks: false });

md.renderer.rules.fence = (tokens, idx) => {
  const token = tokens[idx];
  const lang = token.info.trim().split(/\s+/)[0] ?? "";
  const code = md.utils.escapeHtml(token.content);
  const label = lang ? `<span class="lang">${md.utils.escapeHtml(lang)}</span>` : "";
  return (
    `<div class="code">` +
    `<div class="code-bar">${label}` +
    `<button class="code-copy" title="Copy to the clipboard">Copy</button>` +
    `<button class="code-insert" title="Insert at the cursor in the editor (replaces its selection)">Insert</button>` +
    `</div><pre><code${lang ? ` class="language-${md.utils.escapeHtml(lang)}"` : ""}>${code}</code></pre></div>\n`
  );
};

/**
 * HTML for an answer, also while it streams: a code block still open at the end is closed
 * first, so the half-written block shows as code (not as a paragraph of backticks).
 */
export function renderMarkdown(text: string): string {
  const fences = text.match(/^ {0,3}(`{3,}|~{3,})/gm) ?? [];
  const closed = fences.length % 2 === 1 ? `${text}\n${fences[fences.length - 1].trim()}` : text;
  return md.render(closed);
}
