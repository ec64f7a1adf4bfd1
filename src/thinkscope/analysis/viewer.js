// thinkscope trace viewer: list, filter and sort traces; colour tokens by settling depth;
// hover a token for its JSD-per-layer profile. Data: the JSON in #report-data (see viewer.py).
(() => {
  "use strict";
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const TRACES = DATA.traces;
  const L = DATA.n_layers;
  const LN2 = Math.log(2);
  const SVG = "http://www.w3.org/2000/svg";
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  const $ = (id) => document.getElementById(id);
  const state = { filter: "all", sort: "order", selected: null, tokens: null };

  const esc = (s) => String(s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v, d = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
  const dtrOf = (t) => (DATA.dtr === null ? null : t.m[DATA.dtr]);

  function bytes(b64) {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // Deep layers are bright yellow, shallow ones dark purple (viridis).
  function depthColour(depth) {
    const t = L > 1 ? Math.min(Math.max((depth - 1) / (L - 1), 0), 1) : 1;
    const x = t * (VIRIDIS.length - 1);
    const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
    const f = x - i;
    return VIRIDIS[i].map((a, k) => Math.round(a + f * (VIRIDIS[i + 1][k] - a)));
  }
  const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;
  const inkOn = (c) => (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 ? "#111" : "#fff");

  function visible() {
    let rows = TRACES.map((t, i) => i).filter((i) => state.filter === "all"
      || (state.filter === "correct") === TRACES[i].ok);
    const key = {
      "dtr-desc": (i) => -(dtrOf(TRACES[i]) ?? -Infinity),
      "dtr-asc": (i) => dtrOf(TRACES[i]) ?? Infinity,
      "len-desc": (i) => -TRACES[i].n,
    }[state.sort];
    if (key) rows = rows.sort((a, b) => key(a) - key(b) || a - b);
    return rows;
  }

  function renderList() {
    const rows = visible();
    $("trace-list").innerHTML = rows.map((i) => {
      const t = TRACES[i];
      const sel = i === state.selected ? " selected" : "";
      return `<li class="trace-row ${t.ok ? "ok" : "bad"}${sel}" data-i="${i}" tabindex="0">`
        + `<span class="mark" title="${t.ok ? "correct" : "wrong"}">${t.ok ? "✓" : "✗"}</span>`
        + `<span class="pid" title="${esc(t.p)}">${esc(t.p)}</span>`
        + `<span class="num">#${t.s}</span><span class="num">${fmt(dtrOf(t))}</span></li>`;
    }).join("");
    const shown = TRACES.length < DATA.total ? ` (a sample of ${DATA.total})` : "";
    $("trace-count").textContent = `showing ${rows.length} of ${TRACES.length} traces${shown}`;
  }

  function renderLegend() {
    if (!L) return;
    const stops = VIRIDIS.map((c, i) => `${rgb(c)} ${(100 * i) / (VIRIDIS.length - 1)}%`);
    const tick = L > 1 ? (100 * (DATA.deep_layer - 1)) / (L - 1) : 100;
    $("legend").innerHTML = `<span>settling depth: shallow · layer 1</span>`
      + `<span class="scale" style="background:linear-gradient(to right,${stops.join(",")})">`
      + `<span class="tick" style="left:${tick}%" title="deep threshold"></span></span>`
      + `<span>deep · layer ${L}</span><span>┆ dashed: deep from layer ${DATA.deep_layer};`
      + ` underlined tokens are deep</span>`;
  }

  function select(i) {
    state.selected = i;
    const t = TRACES[i];
    const [question, gold] = DATA.questions[t.p] || ["", ""];
    const chips = DATA.metrics.map((name, k) => `<span class="chip">${esc(name)} `
      + `${Number.isInteger(t.m[k]) ? t.m[k] : fmt(t.m[k])}</span>`);
    $("trace-head").innerHTML = `<h3>${esc(t.p)} · sample ${t.s} · `
      + `<span class="${t.ok ? "ok-text" : "bad-text"}">${t.ok ? "✓ correct" : "✗ wrong"}</span></h3>`
      + `<div>gold <b>${esc(gold)}</b> · predicted <b>${esc(t.pred ?? "none")}</b> · `
      + `${t.n} tokens · finish: ${esc(t.finish)}</div>`
      + `<div class="question">${esc(question)}</div><div class="chips">${chips.join("")}</div>`;
    const depth = t.d ? bytes(t.d) : null;
    state.tokens = { depth, jsd: t.j ? bytes(t.j) : null, t };
    $("tokens").innerHTML = t.t.map((v, k) => {
      let text = DATA.vocab[v];
      const special = text === "" || /^<\|?[\w.]+\|?>$/.test(text);
      text = text === "" ? "∅" : text.replace(/\n/g, "↵\n");
      if (!depth || k >= depth.length) return `<span class="tok" data-k="${k}">${esc(text)}</span>`;
      const c = depthColour(depth[k]);
      const deep = depth[k] >= DATA.deep_layer ? " deep" : "";
      return `<span class="tok${deep}${special ? " special" : ""}" data-k="${k}" `
        + `style="background:${rgb(c)};color:${inkOn(c)}" `
        + `title="settles at layer ${depth[k]} of ${L}">${esc(text)}</span>`;
    }).join("");
    $("inspector").innerHTML = `<p class="hint">Hover a token to see its JSD profile over layers.</p>`;
    document.querySelectorAll("#trace-list .selected").forEach((n) => n.classList.remove("selected"));
    const row = document.querySelector(`#trace-list [data-i="${i}"]`);
    if (row) row.classList.add("selected");
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function inspect(k) {
    const { depth, jsd, t } = state.tokens;
    if (!depth || k >= depth.length) return;
    const text = DATA.vocab[t.t[k]];
    $("inspector").innerHTML = `<div>token ${k + 1} of ${t.t.length}: `
      + `<span class="tok-name">${esc(JSON.stringify(text))}</span></div>`
      + `<div>settles at layer <b>${depth[k]}</b> of ${L} · `
      + `${depth[k] >= DATA.deep_layer ? "<b>deep</b>" : "shallow"}</div>`
      + (jsd ? `<div class="hint">JSD to the final layer (nats); magenta: settling layer</div>`
        : `<div class="hint">No JSD profile in this run: score with --metrics jsd-profile.</div>`);
    if (!jsd) return;
    const W = 280, H = 170, left = 36, right = 8, top = 10, bottom = 30;
    const x = (l) => left + (L > 1 ? (l - 1) / (L - 1) : 1) * (W - left - right);
    const y = (v) => top + (1 - v / LN2) * (H - top - bottom);
    const values = Array.from(jsd.subarray(k * L, (k + 1) * L), (q) => (q / 255) * LN2);
    const svg = el("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": "JSD to the final layer per layer" });
    svg.append(el("rect", { x: x(DATA.deep_layer), y: top, width: x(L) - x(DATA.deep_layer) + 1,
      height: H - top - bottom, fill: "#00000010" }));
    svg.append(el("line", { x1: left, x2: W - right, y1: y(DATA.g), y2: y(DATA.g),
      stroke: "#000", "stroke-dasharray": "4 3" }));
    svg.append(el("text", { x: W - right, y: y(DATA.g) - 3, "text-anchor": "end", "font-size": 10 },
      `g = ${+DATA.g.toFixed(3)}`));
    svg.append(el("line", { x1: x(depth[k]), x2: x(depth[k]), y1: top, y2: H - bottom,
      stroke: "#ff00aa", "stroke-width": 1.5 }));
    svg.append(el("polyline", { points: values.map((v, l) => `${x(l + 1)},${y(v)}`).join(" "),
      fill: "none", stroke: "#0072B2", "stroke-width": 2 }));
    values.forEach((v, l) => svg.append(el("circle", { cx: x(l + 1), cy: y(v), r: 2.2,
      fill: rgb(depthColour(l + 1)) })));
    svg.append(el("line", { x1: left, x2: left, y1: top, y2: H - bottom, stroke: "#888" }));
    svg.append(el("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, stroke: "#888" }));
    for (const v of [0, LN2 / 2, LN2]) {
      svg.append(el("text", { x: left - 4, y: y(v) + 3, "text-anchor": "end", "font-size": 10 }, v.toFixed(2)));
    }
    for (const l of [...new Set([1, Math.round((L + 1) / 2), L])]) {
      svg.append(el("text", { x: x(l), y: H - bottom + 12, "text-anchor": "middle", "font-size": 10 }, l));
    }
    svg.append(el("text", { x: (left + W) / 2, y: H - 4, "text-anchor": "middle", "font-size": 10 },
      "layer (shaded: deep)"));
    $("inspector").append(svg);
  }

  function setFilter(filter) {
    state.filter = filter;
    document.querySelectorAll("[data-filter]").forEach((b) =>
      b.setAttribute("aria-pressed", String(b.dataset.filter === filter)));
    renderList();
  }

  const counts = { all: TRACES.length, correct: TRACES.filter((t) => t.ok).length };
  counts.wrong = counts.all - counts.correct;
  document.querySelectorAll("[data-filter]").forEach((b) => {
    b.querySelector(".count").textContent = `(${counts[b.dataset.filter]})`;
    b.addEventListener("click", () => setFilter(b.dataset.filter));
  });
  $("sort").addEventListener("change", (e) => { state.sort = e.target.value; renderList(); });
  const pick = (e) => {
    const row = e.target.closest(".trace-row");
    if (row) select(Number(row.dataset.i));
  };
  $("trace-list").addEventListener("click", pick);
  $("trace-list").addEventListener("keydown", (e) => { if (e.key === "Enter") pick(e); });
  let active = null;
  $("tokens").addEventListener("mouseover", (e) => {
    const tok = e.target.closest(".tok");
    if (!tok || tok === active) return;
    if (active) active.classList.remove("active");
    active = tok;
    tok.classList.add("active");
    inspect(Number(tok.dataset.k));
  });

  const notes = [];
  if (!DATA.decoded) notes.push("The run's tokenizer was not available: tokens are shown as ids.");
  if (!L) notes.push("No token metrics in this run: run `thinkscope score` to colour tokens.");
  if (notes.length) { $("viewer-note").textContent = notes.join(" "); $("viewer-note").hidden = false; }
  renderLegend();
  renderList();
  if (TRACES.length) select(0);
})();
