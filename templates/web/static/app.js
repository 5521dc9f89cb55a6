// Live sending progress: refresh every <progress data-progress> from its JSON every 5 s.
// The page works without this (reload shows the same numbers); it only saves the reload.
(function () {
  "use strict";
  var bars = document.querySelectorAll("progress[data-progress]");
  if (!bars.length) { return; }
  function refresh() {
    bars.forEach(function (bar) {
      var url = bar.getAttribute("data-progress");
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          bar.max = p.recipients || 1;
          bar.value = p.done;
          bar.textContent = p.percent + "%";
          document.querySelectorAll('[data-progress-text="' + url + '"]').forEach(function (t) {
            t.textContent = p.done + " of " + p.recipients + " done: " + p.sent + " sent, " +
              p.failed + " failed, " + p.uncertain + " uncertain, " + p.skipped + " skipped (" +
              p.status + ").";
          });
        })
        .catch(function () {});
    });
  }
  window.setInterval(refresh, 5000);
})();
