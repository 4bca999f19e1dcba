(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var tags = cards.map(function (c) { return c.dataset.tags ? c.dataset.tags.split(" ") : []; });
  var status = document.getElementById("status-filter");
  var tagFilters = Array.prototype.slice.call(document.querySelectorAll("select.tag-filter"));
  var shown = document.getElementById("shown");
  function apply() {
    var want = status.value;
    var needed = tagFilters.map(function (s) { return s.value; }).filter(Boolean);
    var visible = 0;
    cards.forEach(function (card, i) {
      var keep = (want === "all" || card.dataset.status === want) &&
        needed.every(function (t) { return tags[i].indexOf(t) >= 0; });
      card.classList.toggle("hidden", !keep);
      if (keep) visible++;
    });
    shown.textContent = visible + " of " + cards.length + " shown";
  }
  status.addEventListener("change", apply);
  tagFilters.forEach(function (s) { s.addEventListener("change", apply); });
  function selectText(node, button) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    button.textContent = copied ? "copied" : "press Ctrl+C";
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) return;
    var node = document.getElementById(button.dataset.target);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(node.textContent).then(
        function () { button.textContent = "copied"; },
        function () { selectText(node, button); });
    } else {
      selectText(node, button);
    }
  });
  apply();
})();
