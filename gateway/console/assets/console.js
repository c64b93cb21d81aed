// The console's only script: it starts asciinema-player on #player (the
// recording's URL, where to start, the search hits to mark) and makes the
// hit links seek the player instead of reloading the page.
(function () {
  "use strict";
  var el = document.getElementById("player");
  if (!el || !window.AsciinemaPlayer) {
    return;
  }
  var start = parseFloat(el.dataset.start);
  var markers = (el.dataset.markers || "").split(",").filter(function (m) { return m !== ""; })
    .map(function (m) { return [parseFloat(m), "search hit"]; });
  var opts = { fit: "width", preload: true, markers: markers, terminalFontFamily: "monospace" };
  if (!isNaN(start)) {
    // Show the screen at the hit without playing: a poster of that moment
    // (a tenth of a second after it, so that the output event that
    // completed the hit's line is drawn), and play from there.
    opts.startAt = start;
    opts.poster = "npt:" + (start + 0.1);
  }
  var player = window.AsciinemaPlayer.create(el.dataset.cast, el, opts);
  el.rampartPlayer = player; // for tests and the hit links
  el.dataset.ready = "1";
  document.querySelectorAll("#hits a[data-offset]").forEach(function (a) {
    a.addEventListener("click", function (ev) {
      ev.preventDefault();
      player.seek(parseFloat(a.dataset.offset));
    });
  });
})();
