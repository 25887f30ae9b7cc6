// tracelog report: draws the packets of this page from its data blocks, as they are scrolled to.
// Plain JavaScript, no framework, nothing loaded from outside.  Texts are set with textContent;
// only the diagrams, which tracelog wrote with every log text escaped, are set as markup.
(function () {
  "use strict";

  // A packet is an array (see tracelog/report/page.py, _PacketEncoder.encode).
  var NUMBER = 0, FLOW = 1, REPLY = 2, TITLE = 3, HOST = 4, VERDICT = 5, VERDICT_STEP = 6,
    END_LABEL = 7, END_REST = 8, DIAGRAM = 9, NAMES = 10, ADDRESSES = 11, STEPS = 12, NAT = 13;
  // A step: elapsed ms, hook, table:chain, position, changes [text, kind, …], decision, decision kind.
  var S_TIME = 0, S_HOOK = 1, S_PLACE = 2, S_POSITION = 3, S_CHANGES = 4, S_DECISION = 5, S_KIND = 6;
  var CHANGE_CLASSES = ["iface", "nat", "ttl"];
  var DECISION_CLASSES = ["rule", "mismatch", "note"];
  var BATCH = 24;
  var PRINT_LIMIT = 3000;

  var strings = [];
  var packets = [];
  var flows = new Map();
  var blocks = document.querySelectorAll("script.tl-data");
  for (var b = 0; b < blocks.length; b++) {
    var chunk = JSON.parse(blocks[b].textContent);
    var i;
    if (chunk.s) { for (i = 0; i < chunk.s.length; i++) { strings.push(chunk.s[i]); } }
    if (chunk.p) { for (i = 0; i < chunk.p.length; i++) { packets.push(chunk.p[i]); } }
    if (chunk.flows) { for (i = 0; i < chunk.flows.length; i++) { flows.set(chunk.flows[i][0], chunk.flows[i]); } }
    blocks[b].textContent = "";
  }

  var list = document.getElementById("list");
  var more = document.getElementById("more");
  var moreButton = document.getElementById("more-button");
  var count = document.getElementById("f-count");
  var fields = {
    name: document.getElementById("f-name"),
    address: document.getElementById("f-address"),
    verdict: document.getElementById("f-verdict"),
    chain: document.getElementById("f-chain"),
    rule: document.getElementById("f-rule"),
    flows: document.getElementById("f-flows"),
    diagrams: document.getElementById("f-diagrams")
  };
  var rows = [];
  var shown = 0;
  var matching = 0;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function verdictClass(verdict) {
    if (verdict === "DROP" || verdict === "REJECT") { return "v-drop"; }
    return verdict === "ACCEPT" ? "v-accept" : "v-other";
  }

  function plural(number, noun) { return number + " " + noun + (number === 1 ? "" : "s"); }

  // ---- one packet -------------------------------------------------------------------------------

  function stepItem(packet, step, index, previousHook) {
    var item = element("li", "step");
    var number = index + 1;
    item.dataset.step = String(number);
    var hook = strings[step[S_HOOK]];
    item.appendChild(element("span", "n", String(number)));
    item.appendChild(element("span", "time", step[S_TIME] ? "+" + step[S_TIME] + "ms" : ""));
    item.appendChild(element("span", "hook", hook !== previousHook ? hook : ""));
    var where = element("span", "where");
    where.appendChild(element("span", "place", strings[step[S_PLACE]]));
    where.appendChild(document.createTextNode(" "));
    where.appendChild(element("span", "position", strings[step[S_POSITION]]));
    var changes = step[S_CHANGES];
    for (var c = 0; c < changes.length; c += 2) {
      where.appendChild(document.createTextNode(" "));
      where.appendChild(element("span", "change " + CHANGE_CLASSES[changes[c + 1]], strings[changes[c]]));
    }
    if (number === packet[VERDICT_STEP] && packet[VERDICT]) {
      item.dataset.verdict = packet[VERDICT];
      item.classList.add("decided", verdictClass(packet[VERDICT]));
      where.appendChild(document.createTextNode(" "));
      where.appendChild(element("span", "badge " + verdictClass(packet[VERDICT]), packet[VERDICT]));
    }
    item.appendChild(where);
    if (step[S_DECISION] >= 0) {
      item.appendChild(element("span", "decision " + DECISION_CLASSES[step[S_KIND]], strings[step[S_DECISION]]));
    }
    return item;
  }

  function packetCard(packet) {
    var card = element("article", "packet");
    var number = packet[NUMBER];
    card.id = "packet-" + number;
    card.dataset.packet = String(number);
    card.dataset.flow = String(packet[FLOW]);
    card.tabIndex = -1;
    if (packet[VERDICT]) { card.classList.add(verdictClass(packet[VERDICT])); }
    var heading = element("h4", "packet-title");
    heading.id = "packet-" + number + "-title";
    card.setAttribute("aria-labelledby", heading.id);
    var link = element("a", "number", "#" + number);
    link.href = "#packet-" + number;
    heading.appendChild(link);
    heading.appendChild(document.createTextNode(" " + packet[TITLE] + " "));
    heading.appendChild(element("span", "flow-tag", "flow " + packet[FLOW]));
    if (packet[HOST] >= 0) { heading.appendChild(element("span", "host", "on " + strings[packet[HOST]])); }
    card.appendChild(heading);
    var diagram = element("div", "diagram");
    diagram.innerHTML = strings[packet[DIAGRAM]];
    card.appendChild(diagram);
    if (packet[NAT].length) {
      var nat = element("p", "nat-line");
      for (var r = 0; r < packet[NAT].length; r++) {
        nat.appendChild(element("span", "change nat", "NAT " + strings[packet[NAT][r]]));
        nat.appendChild(document.createTextNode(" "));
      }
      card.appendChild(nat);
    }
    var steps = element("ol", "steps");
    steps.setAttribute("aria-label", "Steps of packet " + number);
    var previousHook = null;
    for (var s = 0; s < packet[STEPS].length; s++) {
      var step = packet[STEPS][s];
      steps.appendChild(stepItem(packet, step, s, previousHook));
      previousHook = strings[step[S_HOOK]];
    }
    card.appendChild(steps);
    var end = element("p", "ending");
    var label = strings[packet[END_LABEL]];
    if (label) {
      end.classList.add(verdictClass(packet[VERDICT]));
      end.appendChild(element("strong", "", label));
    } else {
      end.classList.add("unknown");
    }
    end.appendChild(document.createTextNode(strings[packet[END_REST]]));
    card.appendChild(end);
    return card;
  }

  // ---- rows: a flow's heading, then its requests and replies side by side ------------------------

  function flowHeading(flow, total, replies) {
    var info = flows.get(flow);
    var head = element("div", "flow-head");
    head.id = "flow-" + flow;
    var title = element("h3", "", "Flow " + flow);
    if (info) {
      title.appendChild(document.createTextNode(": " + info[1] + " " + info[2] + " → " + info[3]));
    }
    head.appendChild(title);
    var facts = element("p", "flow-facts");
    var text = plural(total, "packet");
    if (info) {
      text += " · " + info[4] + " from the client, " + info[5] + " from the server";
    }
    facts.appendChild(document.createTextNode(text));
    if (info && info[6]) {
      facts.appendChild(document.createTextNode(" · "));
      facts.appendChild(element("span", "badge " + verdictClass(info[6]), info[6]));
    }
    head.appendChild(facts);
    var sides = element("div", "sides");
    sides.setAttribute("aria-hidden", "true");
    sides.appendChild(element("span", "", "→ from the client"));
    sides.appendChild(element("span", "", replies ? "← from the server" : "← from the server: none shown"));
    head.appendChild(sides);
    return head;
  }

  // Up to this many packets of a flow are drawn at first, the rest on request, so that a flow of
  // thousands of packets (a flood, a long download) does not stand between the reader and the next flow.
  var FLOW_PREVIEW = 12;
  var FLOW_STEP = 100;

  function pairRows(members) {
    var built = [];
    var pair = null;
    for (var k = 0; k < members.length; k++) {
      var packet = members[k];
      if (!packet[REPLY]) {
        pair = { kind: "pair", left: packet, right: null };
        built.push(pair);
      } else if (pair && !pair.right) {
        pair.right = packet;
      } else {
        pair = { kind: "pair", left: null, right: packet };
        built.push(pair);
      }
    }
    return built;
  }

  // Where to cut a flow's packets after about `size`: never between a request and the reply beside it.
  function cutAt(members, size) {
    var cut = Math.min(size, members.length);
    if (cut < members.length && members[cut][REPLY]) { cut++; }
    return cut;
  }

  function flowRows(flow, members) {
    var cut = cutAt(members, FLOW_PREVIEW);
    var built = pairRows(members.slice(0, cut));
    if (cut < members.length) { built.push({ kind: "expand", flow: flow, rest: members.slice(cut), node: null }); }
    return built;
  }

  function buildRows(selected) {
    var built = [];
    if (!fields.flows.checked) {
      for (var i = 0; i < selected.length; i++) { built.push({ kind: "single", packet: selected[i] }); }
      return built;
    }
    var byFlow = new Map();
    for (var j = 0; j < selected.length; j++) {
      var flow = selected[j][FLOW];
      if (!byFlow.has(flow)) { byFlow.set(flow, []); }
      byFlow.get(flow).push(selected[j]);
    }
    byFlow.forEach(function (members, flow) {
      var replies = members.filter(function (packet) { return packet[REPLY]; }).length;
      built.push({ kind: "flow", flow: flow, total: members.length, replies: replies });
      Array.prototype.push.apply(built, flowRows(flow, members));
    });
    return built;
  }

  // Draw the next packets of a collapsed flow where its button stood; returns the rows added.
  function expand(row) {
    var index = rows.indexOf(row);
    var cut = cutAt(row.rest, FLOW_STEP);
    var added = pairRows(row.rest.slice(0, cut));
    if (cut < row.rest.length) {
      added.push({ kind: "expand", flow: row.flow, rest: row.rest.slice(cut), node: null });
    }
    Array.prototype.splice.apply(rows, [index, 1].concat(added));
    if (index < shown && row.node) {
      var fragment = document.createDocumentFragment();
      for (var a = 0; a < added.length; a++) { fragment.appendChild(rowNode(added[a])); }
      row.node.replaceWith(fragment);
      shown += added.length - 1;
    }
    return added;
  }

  function expandButton(row) {
    var box = element("div", "expand");
    var button = element("button", "", "Show " + plural(Math.min(FLOW_STEP, row.rest.length), "more packet") +
      " of flow " + row.flow);
    button.type = "button";
    box.appendChild(button);
    box.appendChild(element("span", "expand-note", " " + row.rest.length + " not shown yet"));
    button.addEventListener("click", function () {
      var added = expand(row);
      var first = added.length && added[0].kind === "pair" ? (added[0].left || added[0].right) : null;
      var card = first && document.getElementById("packet-" + first[NUMBER]);
      if (card) { card.focus({ preventScroll: true }); }
    });
    row.node = box;
    return box;
  }

  function rowNode(row) {
    if (row.kind === "flow") { return flowHeading(row.flow, row.total, row.replies); }
    if (row.kind === "single") { return packetCard(row.packet); }
    if (row.kind === "expand") { return expandButton(row); }
    var pair = element("div", "pair");
    var left = element("div", "side request");
    var right = element("div", "side reply");
    if (row.left) { left.appendChild(packetCard(row.left)); }
    if (row.right) { right.appendChild(packetCard(row.right)); }
    pair.appendChild(left);
    pair.appendChild(right);
    return pair;
  }

  function renderUpTo(limit) {
    var end = Math.min(limit, rows.length);
    if (end <= shown) { return; }
    var fragment = document.createDocumentFragment();
    for (; shown < end; shown++) { fragment.appendChild(rowNode(rows[shown])); }
    list.appendChild(fragment);
    more.hidden = shown >= rows.length;
  }

  function renderMore() { renderUpTo(shown + BATCH); }

  // ---- filters ---------------------------------------------------------------------------------

  function fillSelect(select, values) {
    var sorted = Array.from(values).sort();
    for (var i = 0; i < sorted.length; i++) {
      var option = element("option", "", sorted[i]);
      option.value = sorted[i];
      select.appendChild(option);
    }
  }

  (function fillFilters() {
    var names = new Set(), verdicts = new Set(), chains = new Set();
    for (var i = 0; i < packets.length; i++) {
      var packet = packets[i];
      for (var n = 0; n < packet[NAMES].length; n++) { names.add(strings[packet[NAMES][n]]); }
      verdicts.add(packet[VERDICT] || "unknown");
      for (var s = 0; s < packet[STEPS].length; s++) { chains.add(strings[packet[STEPS][s][S_PLACE]]); }
    }
    fillSelect(fields.name, names);
    fillSelect(fields.verdict, verdicts);
    fillSelect(fields.chain, chains);
    if (!names.size) { fields.name.disabled = true; }
  })();

  function matcher() {
    var name = fields.name.value;
    var address = fields.address.value.trim();
    var verdict = fields.verdict.value;
    var chain = fields.chain.value;
    var rule = fields.rule.value.trim().toLowerCase();
    var ruleHits = new Map();
    function ruleMatches(index) {
      var hit = ruleHits.get(index);
      if (hit === undefined) {
        hit = strings[index].toLowerCase().indexOf(rule) >= 0;
        ruleHits.set(index, hit);
      }
      return hit;
    }
    return function (packet) {
      var i;
      if (verdict && (packet[VERDICT] || "unknown") !== verdict) { return false; }
      if (name && !packet[NAMES].some(function (n) { return strings[n] === name; })) { return false; }
      if (address && !packet[ADDRESSES].some(function (a) { return strings[a].indexOf(address) >= 0; })) {
        return false;
      }
      var steps = packet[STEPS];
      if (chain) {
        for (i = 0; i < steps.length && strings[steps[i][S_PLACE]] !== chain; i++) { /* look on */ }
        if (i === steps.length) { return false; }
      }
      if (rule) {
        for (i = 0; i < steps.length && !(steps[i][S_DECISION] >= 0 && ruleMatches(steps[i][S_DECISION])); i++) {
          /* look on */
        }
        if (i === steps.length) { return false; }
      }
      return true;
    };
  }

  function apply() {
    var test = matcher();
    var selected = packets.filter(test);
    matching = selected.length;
    rows = buildRows(selected);
    shown = 0;
    list.textContent = "";
    var flowCount = new Set(selected.map(function (p) { return p[FLOW]; })).size;
    count.textContent = (matching === packets.length
      ? plural(packets.length, "packet")
      : matching + " of " + plural(packets.length, "packet") + " match") + " in " + plural(flowCount, "flow");
    renderMore();
    fillViewport();
  }

  function clearFilters() {
    fields.name.value = "";
    fields.address.value = "";
    fields.verdict.value = "";
    fields.chain.value = "";
    fields.rule.value = "";
  }

  var typing = null;
  function applySoon() {
    if (typing) { clearTimeout(typing); }
    typing = setTimeout(function () { typing = null; apply(); }, 150);
  }
  fields.name.addEventListener("change", apply);
  fields.verdict.addEventListener("change", apply);
  fields.chain.addEventListener("change", apply);
  fields.flows.addEventListener("change", apply);
  fields.diagrams.addEventListener("change", function () {
    list.classList.toggle("no-diagrams", !fields.diagrams.checked);
    fillViewport();
  });
  fields.address.addEventListener("input", applySoon);
  fields.rule.addEventListener("input", applySoon);
  document.getElementById("filters").addEventListener("submit", function (event) { event.preventDefault(); });

  // ---- lazy drawing: more rows as the end of the list comes near ---------------------------------

  function nearEnd() {
    return !more.hidden && more.getBoundingClientRect().top < window.innerHeight + 1200;
  }
  function fillViewport() {
    var rounds = 0;
    while (nearEnd() && rounds < 20) { renderMore(); rounds++; }
  }
  moreButton.addEventListener("click", function () { renderMore(); });
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (entry) { return entry.isIntersecting; })) {
        renderMore();
        window.requestAnimationFrame(fillViewport);
      }
    }, { rootMargin: "1200px 0px" }).observe(more);
  }
  window.addEventListener("beforeprint", function () { renderUpTo(Math.min(rows.length, PRINT_LIMIT)); });

  // ---- links to a packet or a flow, and the keyboard -------------------------------------------

  function holds(packet, number) { return packet && packet[NUMBER] === number; }

  // The row that shows a flow or packet; a collapsed flow is opened as far as the packet.
  function rowOf(kind, number) {
    for (var r = 0; r < rows.length; r++) {
      var row = rows[r];
      if (kind === "flow" && row.kind === "flow" && row.flow === number) { return r; }
      if (kind !== "packet") { continue; }
      if (row.kind === "single" && holds(row.packet, number)) { return r; }
      if (row.kind === "pair" && (holds(row.left, number) || holds(row.right, number))) { return r; }
      if (row.kind === "expand" && row.rest.some(function (p) { return holds(p, number); })) {
        expand(row);
        r--;  // look at what took its place
      }
    }
    return -1;
  }

  function reveal(hash) {
    var found = /^#(packet|flow)-(\d+)$/.exec(hash);
    if (!found) { return; }
    var kind = found[1], number = Number(found[2]);
    var row = rowOf(kind, number);
    if (row < 0) {
      clearFilters();
      apply();
      row = rowOf(kind, number);
      if (row < 0) { return; }
    }
    renderUpTo(row + 1);
    var target = document.getElementById(kind + "-" + number);
    if (target) {
      if (kind === "flow") { target.tabIndex = -1; }
      target.scrollIntoView({ block: "start" });
      target.focus({ preventScroll: true });
    }
  }
  window.addEventListener("hashchange", function () { reveal(location.hash); });

  function step(direction) {
    var cards = list.querySelectorAll("article.packet");
    if (!cards.length) { return; }
    var current = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("article.packet") : null;
    var index = Array.prototype.indexOf.call(cards, current);
    var next = index < 0 ? 0 : index + direction;
    if (next >= cards.length && shown < rows.length) {
      renderMore();
      cards = list.querySelectorAll("article.packet");
    }
    if (next < 0 || next >= cards.length) { return; }
    cards[next].focus({ preventScroll: true });
    cards[next].scrollIntoView({ block: "start" });
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var inField = target && /^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName);
    if (event.key === "Escape" && inField) { target.blur(); return; }
    if (inField || event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (event.key === "j") { step(1); event.preventDefault(); }
    else if (event.key === "k") { step(-1); event.preventDefault(); }
    else if (event.key === "/") { fields.rule.focus(); event.preventDefault(); }
  });

  apply();
  if (location.hash) { reveal(location.hash); }
  document.documentElement.dataset.ready = "true";
  if (window.performance && performance.mark) { performance.mark("tracelog-first-packets"); }
})();
