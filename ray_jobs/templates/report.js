(function () {
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  var tags = cards.map(function (c) { return c.dataset.tags ? c.dataset.tags.split(" ") : []; });
  var status = document.getElementById("status-filter");
  var tagFilters = Array.prototype.slice.call(document.querySelectorAll("select.tag-filter"));
  var shown = document.getElementById("shown");
  var sortBy = document.getElementById("sort-by");
  var scoreFilter = document.getElementById("score-filter");
  var scoreOp = document.getElementById("score-op");
  var scoreValue = document.getElementById("score-value");
  cards.forEach(function (card, i) { card.dataset.order = i; });
  function score(card, name) {  // null when the card has no such score
    var raw = card.getAttribute("data-q-" + name);
    return raw === null || raw === "" ? null : Number(raw);
  }
  function scoreKeeps(card) {
    var name = scoreFilter.value, limit = scoreValue.value;
    if (!name || limit === "") return true;
    var value = score(card, name);
    if (value === null) return false;  // like --where: a missing score never matches
    return scoreOp.value === "lt" ? value < Number(limit) : value > Number(limit);
  }
  function weakness(card, name, weak) {  // larger is weaker; cards without the score go last
    var value = score(card, name);
    if (value === null) return -Infinity;
    return weak === "low" ? -value : weak === "high" ? value : Math.abs(value);
  }
  function sort() {  // plan order, or the weakest first by the chosen score (a group by its weakest card)
    var name = sortBy.value, weak = name ? sortBy.selectedOptions[0].dataset.weak : "";
    var boxes = [document.querySelector("main.grid")].concat(
      Array.prototype.slice.call(document.querySelectorAll("section.candidates .row")));
    function members(node) {
      return node.matches("article.card") ? [node] : Array.prototype.slice.call(node.querySelectorAll("article.card"));
    }
    function order(node) { return Number(members(node)[0].dataset.order); }
    function key(node) {
      return Math.max.apply(null, members(node).map(function (c) { return weakness(c, name, weak); }));
    }
    boxes.forEach(function (box) {
      var children = Array.prototype.slice.call(box.children);
      children.sort(function (a, b) { return (name ? key(b) - key(a) : 0) || order(a) - order(b); });
      children.forEach(function (node) { box.appendChild(node); });
    });
  }
  function apply() {
    var want = status.value;
    var needed = tagFilters.map(function (s) { return s.value; }).filter(Boolean);
    var visible = 0;
    cards.forEach(function (card, i) {
      var keep = (want === "all" || card.dataset.status === want) &&
        needed.every(function (t) { return tags[i].indexOf(t) >= 0; }) && scoreKeeps(card);
      card.classList.toggle("hidden", !keep);
      if (keep) visible++;
    });
    document.querySelectorAll("section.candidates").forEach(function (group) {
      group.classList.toggle("hidden", !group.querySelector("article.card:not(.hidden)"));
    });
    shown.textContent = visible + " of " + cards.length + " shown";
  }
  status.addEventListener("change", apply);
  tagFilters.forEach(function (s) { s.addEventListener("change", apply); });
  [scoreFilter, scoreOp].forEach(function (s) { s.addEventListener("change", apply); });
  scoreValue.addEventListener("input", apply);
  sortBy.addEventListener("change", sort);
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
