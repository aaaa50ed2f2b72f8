// The chat view's page script. It only shows what the extension sends (HTML it rendered
// from Markdown with raw HTML off) and sends back what the user does.
(function () {
  const vscode = acquireVsCodeApi();
  const turns = document.getElementById("turns");
  const input = document.getElementById("input");
  const form = document.getElementById("composer");
  const send = document.getElementById("send");
  let streaming = null; // the answer element being streamed into

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function scrollDown() {
    turns.scrollTop = turns.scrollHeight;
  }

  function addTurn(index, turn) {
    const node = element("div", `turn ${turn.role}${turn.error ? " error" : ""}`);
    node.dataset.index = String(index);
    if (turn.role === "user") {
      node.appendChild(element("div", "body", turn.text));
    } else {
      const body = element("div", "body markdown");
      body.innerHTML = turn.html || "";
      node.appendChild(body);
      if (turn.footer) node.appendChild(element("div", "decision", turn.footer));
      if (turn.context) node.appendChild(element("div", "context", turn.context));
      if (turn.actions && turn.actions.length) {
        const bar = element("div", "actions");
        turn.actions.forEach((title, i) => {
          const button = element("button", "action", title);
          button.addEventListener("click", () => vscode.postMessage({ type: "action", turn: index, index: i }));
          bar.appendChild(button);
        });
        node.appendChild(bar);
      }
    }
    turns.appendChild(node);
    scrollDown();
  }

  function setBusy(busy) {
    send.disabled = busy;
    document.body.classList.toggle("busy", busy);
    if (busy) {
      streaming = element("div", "turn assistant streaming");
      const body = element("div", "body markdown");
      body.appendChild(element("p", "waiting", "…"));
      streaming.appendChild(body);
      turns.appendChild(streaming);
      scrollDown();
    } else if (streaming) {
      streaming.remove();
      streaming = null;
    }
  }

  window.addEventListener("message", (event) => {
    const message = event.data;
    switch (message.type) {
      case "reset":
        turns.textContent = "";
        streaming = null;
        message.turns.forEach((turn, i) => addTurn(i, turn));
        if (message.busy) setBusy(true);
        break;
      case "turn":
        if (streaming && message.turn.role === "assistant") {
          streaming.remove();
          streaming = null;
        }
        addTurn(message.index, message.turn);
        if (document.body.classList.contains("busy") && message.turn.role === "user") setBusy(true);
        break;
      case "stream":
        if (streaming) {
          streaming.querySelector(".body").innerHTML = message.html;
          scrollDown();
        }
        break;
      case "busy":
        if (message.busy && !streaming) setBusy(true);
        else if (!message.busy) setBusy(false);
        break;
    }
  });

  // Copy and Insert on every code block (also while it streams).
  turns.addEventListener("click", (event) => {
    const button = event.target.closest("button.code-copy, button.code-insert");
    if (!button) return;
    const code = button.closest(".code").querySelector("pre code").textContent;
    vscode.postMessage({ type: button.classList.contains("code-copy") ? "copy" : "insert", code });
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || send.disabled) return;
    input.value = "";
    vscode.postMessage({ type: "send", text });
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  document.getElementById("new").addEventListener("click", () => vscode.postMessage({ type: "new" }));
  document.getElementById("history").addEventListener("click", () => vscode.postMessage({ type: "history" }));
  vscode.postMessage({ type: "ready" });
})();
