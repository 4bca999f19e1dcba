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
  var picks = Array.prototype.slice.call(document.querySelectorAll("input.promote-pick"));
  var promoteCommand = document.getElementById("promote-cmd");
  function shellWord(text) {
    return /^[A-Za-z0-9_.,:=@%+\/-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }
  function updatePromote() {
    var picked = picks.filter(function (p) { return p.checked; }).map(function (p) { return p.value; });
    var others = cards.map(function (c) { return c.dataset.id; })
      .filter(function (id) { return picked.indexOf(id) < 0; });
    document.getElementById("promote-count").textContent = picked.length;
    document.querySelector("#promote button.copy").disabled = picked.length === 0;
    var selection = others.length === 0 ? "" : picked.length <= others.length ?
      " --only " + picked.map(shellWord).join(" ") : " --exclude " + others.map(shellWord).join(" ");
    promoteCommand.textContent = picked.length ? promoteCommand.dataset.base + selection : "pick drafts to promote";
  }
  if (promoteCommand) {
    picks.forEach(function (p) { p.addEventListener("change", updatePromote); });
    document.getElementById("promote-shown").addEventListener("click", function () {
      picks.forEach(function (p) { if (!p.closest("article").classList.contains("hidden")) p.checked = true; });
      updatePromote();
    });
    document.getElementById("promote-none").addEventListener("click", function () {
      picks.forEach(function (p) { p.checked = false; });
      updatePromote();
    });
    updatePromote();
  }
  apply();
})();
