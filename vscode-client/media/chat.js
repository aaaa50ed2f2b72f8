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

  // A thumb icon drawn here (an emoji needs a colour-emoji font, which many Linux systems lack).
  function thumb(down) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("width", "14");
    svg.setAttribute("height", "14");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute(
      "d",
      "M1 7h3v8H1z M5 7.5 8.2 1.6c.9-.3 2 .3 2 1.4L9.8 6h4c.8 0 1.4.8 1.2 1.6l-1.4 6.2c-.1.7-.7 1.2-1.4 1.2H5z",
    );
    if (down) path.setAttribute("transform", "rotate(180 8 8)");
    svg.appendChild(path);
    return svg;
  }

  // Under an answer with a trace id: thumbs up / down, "Try a stronger tier", "Wrong route…", and what
  // the last click recorded (the extension sends it to the server's trace).
  function feedbackBar(index, feedback) {
    const bar = element("div", "feedback");
    const rate = (rating, title) => {
      const button = element("button", `rate ${rating}`);
      button.appendChild(thumb(rating === "down"));
      button.title = title;
      button.setAttribute("aria-label", title);
      button.setAttribute("aria-pressed", String(feedback.rating === rating));
      button.addEventListener("click", () => vscode.postMessage({ type: "rate", turn: index, rating }));
      bar.appendChild(button);
    };
    rate("up", "Good answer");
    rate("down", "Not a good answer");
    if (feedback.stronger) {
      const stronger = element("button", "stronger", "Try a stronger tier");
      stronger.title = "Ask the same question again on the role's strong tier (recorded in the trace)";
      stronger.addEventListener("click", () => vscode.postMessage({ type: "stronger", turn: index }));
      bar.appendChild(stronger);
    }
    const reroute = element("button", "reroute", "Wrong route…");
    reroute.title = "Tell tinyarms which route this request should have taken";
    reroute.addEventListener("click", () => vscode.postMessage({ type: "reroute", turn: index }));
    bar.appendChild(reroute);
    if (feedback.recorded) bar.appendChild(element("span", "recorded", feedback.recorded));
    return bar;
  }

  function turnNode(index, turn) {
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
      if (turn.feedback) node.appendChild(feedbackBar(index, turn.feedback));
    }
    return node;
  }

  function addTurn(index, turn) {
    turns.appendChild(turnNode(index, turn));
    scrollDown();
  }

  function updateTurn(index, turn) {
    const old = turns.querySelector(`.turn[data-index="${index}"]`);
    if (old) old.replaceWith(turnNode(index, turn));
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
        if (message.note) {
          const note = element("div", "turn assistant note");
          note.innerHTML = message.note;
          turns.appendChild(note);
        }
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
      case "update":
        updateTurn(message.index, message.turn);
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
