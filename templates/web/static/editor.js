// Live preview for the issue editor: as the editor types, the form (unsaved) is posted to the
// draft-preview URLs after a short pause, into the two preview frames and the text part.
// The frames are loaded by form posts, not filled from script, so each email keeps the
// sandboxed policy its own response sends. Without this file the "Preview without saving"
// button does the same for the desktop frame.
// One preview at a time beside the form, Desktop or Mobile, so the form keeps its width.
// Without this file both previews show, one above the other.
(function () {
  "use strict";
  var box = document.querySelector(".editor-previews .previews");
  if (!box) { return; }
  var figures = [box.querySelector(".preview-desktop"), box.querySelector(".preview-mobile")];
  if (!figures[0] || !figures[1]) { return; }
  var bar = document.createElement("div");
  bar.className = "preview-switch";
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Preview width");
  var buttons = ["Desktop, 600 px", "Mobile, 375 px"].map(function (label, index) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = label;
    button.addEventListener("click", function () { show(index); });
    bar.appendChild(button);
    return button;
  });
  function show(which) {
    figures.forEach(function (figure, index) { figure.hidden = index !== which; });
    buttons.forEach(function (button, index) {
      button.setAttribute("aria-pressed", index === which ? "true" : "false");
    });
  }
  box.parentNode.insertBefore(bar, box);
  box.classList.add("one-at-a-time");
  show(0);
})();

(function () {
  "use strict";
  var form = document.querySelector("form[data-live-preview]");
  if (!form) { return; }
  var htmlUrl = form.getAttribute("data-live-preview");
  var textUrl = form.getAttribute("data-live-text");
  var status = document.getElementById("preview-status");
  var plain = document.getElementById("plain-text");
  var token = form.querySelector('input[name="csrf_token"]').value;
  var timer = null;
  var sequence = 0;

  // One hidden form per frame: a form has one planned navigation at a time, so posting the
  // same form twice in a row would cancel the first.
  function mirror(target) {
    var copy = document.createElement("form");
    copy.method = "post";
    copy.action = htmlUrl;
    copy.target = target;
    copy.hidden = true;
    document.body.appendChild(copy);
    return copy;
  }
  var mirrors = [mirror("preview-desktop-frame"), mirror("preview-mobile-frame")];

  function fill(copy, data) {
    copy.replaceChildren();
    data.forEach(function (value, name) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      copy.appendChild(input);
    });
  }

  function render() {
    var data = new FormData(form);
    var mine = ++sequence;
    mirrors.forEach(function (copy) { fill(copy, data); copy.submit(); });
    fetch(textUrl, {
      method: "POST",
      body: new URLSearchParams(data),
      credentials: "same-origin",
      headers: { "X-CSRF-Token": token },
    })
      .then(function (r) {
        return r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status));
      })
      .then(function (text) {
        if (mine !== sequence) { return; }
        plain.textContent = text;
        status.textContent = "Preview of your unsaved changes. Press Save to keep them.";
      })
      .catch(function (error) {
        if (mine === sequence) { status.textContent = "The preview could not be updated: " + error.message; }
      });
  }

  form.addEventListener("input", function () {
    status.textContent = "Updating the preview…";
    window.clearTimeout(timer);
    timer = window.setTimeout(render, 400);
  });
})();
