(function () {
  "use strict";
  // The cards are data (report.py's card_data); this lays out a page of them at a time and sorts and filters over
  // all. Text goes into text nodes and attributes only, never into markup.
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var cards = data.cards, shared = data.shared, PAGE = data.page;
  var KEEP = 10 * PAGE;  // units kept laid out (hidden) off the page, so paging back and filtering again is instant
  var units = data.units.map(function (u) { return typeof u === "number" ? {cards: [u]} : u; });
  units.forEach(function (u, order) { u.order = order; });
  var scoreNames = data.scores.map(function (s) { return s[0]; });
  var tagTokens = shared.map(function (s) { return s.tokens === undefined ? null : s.tokens.split(" "); });
  var tokens = cards.map(function (c) { return c.tags === undefined ? [] : tagTokens[c.tags]; });
  var grid = document.querySelector("main.grid");
  var status = document.getElementById("status-filter");
  var tagFilters = Array.prototype.slice.call(document.querySelectorAll("select.tag-filter"));
  var shown = document.getElementById("shown");
  var sortBy = document.getElementById("sort-by");
  var scoreFilter = document.getElementById("score-filter");
  var scoreOp = document.getElementById("score-op");
  var scoreValue = document.getElementById("score-value");
  var pagers = Array.prototype.slice.call(document.querySelectorAll("nav.pager"));
  var cardNodes = [], page = 0, onPage = [], laidOut = [], picked = new Set();

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs).forEach(function (name) {
      if (attrs[name] !== undefined && attrs[name] !== null) node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child !== undefined && child !== null) node.append(child); });
    return node;
  }
  function fmt(value) {  // as report.py's _fmt: a dash for none, integers as they are, else 6 significant digits
    if (value === null || value === undefined) return "–";
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  }
  function score(i, name) {  // null when the card has no such score
    var q = cards[i].q, value = q ? q[scoreNames.indexOf(name)] : null;
    return value === undefined ? null : value;
  }

  function timeline(t) {
    var windows = t.windows.map(function (w, k) {  // its span, who rendered it, its scores: what the row has
      var lines = [w.label, w.by, w.scores].filter(function (line) { return line; });
      return el("div", {class: "window", style: "left:" + w.left + "%;width:" + w.width + "%",
        title: "window " + (k + 1) + ": " + lines.join("; ")}, [el("b", {}, [String(k + 1)])].concat(
        lines.map(function (line) { return el("span", {}, [line]); })));
    });
    var seams = t.seams.map(function (s) {
      return el("div", {class: "seam" + (s.weak ? " weak" : ""), style: "left:" + s.left + "%", "data-frame": s.frame,
        title: "seam at frame " + s.frame + ": " + s.score + " (1 = no jump)"}, [s.score]);
    });
    return el("div", {class: "timeline", "aria-label": "windows and seams"}, windows.concat(seams));
  }
  function buildCard(i) {
    var c = cards[i], look = shared[c.look], uid = c.uid || c.id;
    var tags = c.tags === undefined ? {tags: [], tokens: ""} : shared[c.tags];
    var facts = [], scores = [], timings = [];
    look.facts.forEach(function (f) { facts.push(el("dt", {}, [f[0]]), el("dd", {}, [f[1] === null ? c.seed : f[1]])); });
    data.scores.forEach(function (s, k) {
      scores.push(el("dt", {title: s[1]}, [s[0]]), el("dd", {class: "q-" + s[0]}, [fmt(c.q ? c.q[k] : null)]));
    });
    (c.timings || []).forEach(function (t) { timings.push(el("span", {}, [t[0] + " " + t[1]]), " "); });
    if (c.timings && c.total) timings.push(el("b", {}, ["total " + c.total]));  // shown with the timings only
    var pick = c.promotable ? el("input", {type: "checkbox", class: "promote-pick", value: c.id}) : null;
    if (pick) pick.checked = picked.has(c.id);
    var body = [
      c.poster ? el("img", {loading: "lazy", src: "posters/" + uid + ".jpg", width: c.poster[0], height: c.poster[1], alt: ""})
        : el("div", {class: "noposter"}, [c.status === "ok" ? "no poster" : c.status]),
      el("h2", {}, [el("span", {class: "badge"}, [c.status]), c.best ? " " : null,
        c.best ? el("span", {class: "badge best"}, ["best"]) : null, " ", el("span", {class: "id"}, [c.id])]),
      pick ? el("label", {class: "pick"}, [pick, " promote this draft"]) : null,
      tags.tags.length ? el("ul", {class: "tags"}, tags.tags.map(function (t) { return el("li", {}, [t[0] + ": " + t[1]]); })) : null,
      el("p", {class: "prompt"}, [shared[c.prompt]]),
      c.enhanced !== undefined ? el("details", {class: "prompt"}, [el("summary", {}, ["enhanced prompt (what was encoded)"]), c.enhanced]) : null,
      el("dl", {}, facts),
      el("p", {class: "guidance"}, [look.guidance]),
      c.q ? el("dl", {class: "scores"}, scores) : null,
      c.timeline ? timeline(c.timeline) : null,
      c.reason ? el("p", {class: "hint quality-reason"}, [c.reason]) : null,
      timings.length ? el("p", {class: "timings"}, timings) : null
    ];
    if (c.status === "failed") {
      body.push(el("pre", {class: "error"}, [c.error]),
        el("div", {class: "retry"}, [el("code", {id: "cmd-" + uid}, [data.runCommand]),
          el("button", {type: "button", class: "copy", "data-target": "cmd-" + uid}, ["copy"])]),
        el("p", {class: "hint"}, ["re-renders every item without an ok result, this one with seed " + c.seed]));
    }
    if (c.status === "ok") body.push(el("a", {class: "video", href: "../videos/" + uid + ".mp4"}, [c.id + ".mp4"]));
    return el("article", {class: "card " + c.status + (c.best ? " best" : ""), id: "item-" + uid, "data-status": c.status,
      "data-tags": tags.tokens, "data-id": c.id, "data-pipeline": look.pipeline}, body);
  }
  function card(i) { return cardNodes[i] || (cardNodes[i] = buildCard(i)); }
  function unitNode(u) {
    if (!u.node) {
      u.node = u.origin === undefined ? card(u.cards[0]) : el("section", {class: "candidates", id: "retry-" + u.uid}, [
        el("h2", {}, [u.origin + ": " + u.cards.length + " candidates" + (u.note ? " · " + u.note : "")]),
        el("div", {class: "row"}, u.cards.map(card))]);
      laidOut.push(u);
    }
    return u.node;
  }

  function keeps(i) {
    var want = status.value, c = cards[i];
    if (want !== "all" && c.status !== want) return false;
    if (!tagFilters.every(function (s) { return !s.value || tokens[i].indexOf(s.value) >= 0; })) return false;
    var name = scoreFilter.value, limit = scoreValue.value;
    if (!name || limit === "") return true;
    var value = score(i, name);
    if (value === null) return false;  // like --where: a missing score never matches
    return scoreOp.value === "lt" ? value < Number(limit) : value > Number(limit);
  }
  function weakness(i, name, weak) {  // larger is weaker; cards without the score go last
    var value = score(i, name);
    if (value === null) return -Infinity;
    return weak === "low" ? -value : weak === "high" ? value : Math.abs(value);
  }
  function render() {  // the filtered units, weakest first by the chosen score (a group by its weakest card), paged
    var kept = cards.map(function (c, i) { return keeps(i); });
    var name = sortBy.value, weak = name ? sortBy.selectedOptions[0].dataset.weak : "";
    function key(i) { return weakness(i, name, weak); }
    function byWeakness(a, b) { return (name ? key(b) - key(a) : 0) || a - b; }
    var list = units.filter(function (u) { return u.cards.some(function (i) { return kept[i]; }); });
    if (name) {
      list.forEach(function (u) { u.key = Math.max.apply(null, u.cards.map(key)); });
      list.sort(function (a, b) { return (b.key - a.key) || a.order - b.order; });
    }
    var pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(page, pages - 1);
    onPage.forEach(function (u) { u.node.classList.add("hidden"); });
    onPage = list.slice(page * PAGE, (page + 1) * PAGE);
    onPage.forEach(function (u) {
      var node = unitNode(u);
      node.classList.remove("hidden");
      if (u.origin !== undefined) {
        var row = node.querySelector(".row");
        u.cards.slice().sort(byWeakness).forEach(function (i) {
          card(i).classList.toggle("hidden", !kept[i]);
          row.appendChild(card(i));
        });
      }
      grid.appendChild(node);
    });
    if (laidOut.length > KEEP) {  // forget the units off the page: a long browse through many pages stays light
      laidOut = laidOut.filter(function (u) {
        if (onPage.indexOf(u) >= 0) return true;
        u.node.remove();
        u.node = null;
        u.cards.forEach(function (i) { cardNodes[i] = null; });
        return false;
      });
    }
    shown.textContent = kept.filter(Boolean).length + " of " + cards.length + " shown";
    pagers.forEach(function (pager) {
      pager.hidden = pages < 2;
      pager.querySelector(".at").textContent = "page " + (page + 1) + " of " + pages;
      pager.querySelector(".prev").disabled = page === 0;
      pager.querySelector(".next").disabled = page === pages - 1;
    });
  }
  function first() { page = 0; render(); }
  [status, scoreFilter, scoreOp, sortBy].concat(tagFilters).forEach(function (s) { s.addEventListener("change", first); });
  scoreValue.addEventListener("input", first);
  pagers.forEach(function (pager) {
    pager.querySelector(".prev").addEventListener("click", function () { page -= 1; render(); window.scrollTo(0, 0); });
    pager.querySelector(".next").addEventListener("click", function () { page += 1; render(); window.scrollTo(0, 0); });
  });

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

  var promoteCommand = document.getElementById("promote-cmd");
  function shellWord(text) {
    return /^[A-Za-z0-9_.,:=@%+\/-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }
  function updatePromote() {  // picked drafts on every page, in plan order
    grid.querySelectorAll("input.promote-pick").forEach(function (p) { p.checked = picked.has(p.value); });
    var ids = cards.map(function (c) { return c.id; });
    var chosen = ids.filter(function (id) { return picked.has(id); });
    var others = ids.filter(function (id) { return !picked.has(id); });
    document.getElementById("promote-count").textContent = chosen.length;
    document.querySelector("#promote button.copy").disabled = chosen.length === 0;
    var selection = others.length === 0 ? "" : chosen.length <= others.length ?
      " --only " + chosen.map(shellWord).join(" ") : " --exclude " + others.map(shellWord).join(" ");
    promoteCommand.textContent = chosen.length ? promoteCommand.dataset.base + selection : "pick drafts to promote";
  }
  if (promoteCommand) {
    grid.addEventListener("change", function (event) {
      var pick = event.target;
      if (!pick.classList.contains("promote-pick")) return;
      if (pick.checked) picked.add(pick.value); else picked.delete(pick.value);
      updatePromote();
    });
    document.getElementById("promote-shown").addEventListener("click", function () {  // on every page
      cards.forEach(function (c, i) { if (c.promotable && keeps(i)) picked.add(c.id); });
      updatePromote();
    });
    document.getElementById("promote-none").addEventListener("click", function () {
      picked.clear();
      updatePromote();
    });
    updatePromote();
  }
  render();
})();
