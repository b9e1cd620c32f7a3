(function(){
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const A = D.actions, F = D.folders, R = D.reasons, G = D.genres, SEP = D.sep;
const ORDER = {"failed":0,"uncertain":1,"would tag":2,"tagged":2,"skipped":3};
const COLOUR = __ACTION_COLOURS__;
const PAGE = 100;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const path = (r) => F[r[0]] + SEP + r[1];
const names = (ids) => ids.map((i) => G[i]).join("; ");
const score = (r) => r[5].length ? r[5][1] : -1;
const fmt = (m) => (Math.floor(m / 10) / 100).toFixed(2);  // thousandths -> 2 decimals, rounded down
let hay = null;  // lower-case search text per row, built on first use
function haystack(i){
  if (!hay) hay = new Array(D.rows.length);
  let h = hay[i];
  if (h === undefined){
    const r = D.rows[i];
    const pred = []; for (let k = 0; k < r[5].length; k += 2) pred.push(G[r[5][k]]);
    h = hay[i] = [path(r), names(r[4]), pred.join(" "), names(r[6]), R[r[3]], A[r[2]], r[9], r[7]].join("\u0001").toLowerCase();
  }
  return h;
}
const state = {view:"files", q:"", actions:new Set(A), onlyFlagged:false, page:0,
               sort:{files:{key:null, dir:1}, albums:{key:null, dir:1}}};
let shown = [];

const cmp = (a, b) => a < b ? -1 : a > b ? 1 : 0;
const FILE_KEYS = {
  path: (i) => path(D.rows[i]),
  existing: (i) => names(D.rows[i][4]).toLowerCase(),
  score: (i) => score(D.rows[i]),
  action: (i) => ORDER[A[D.rows[i][2]]],
  reason: (i) => R[D.rows[i][3]].toLowerCase(),
};
const ALBUM_KEYS = {
  folder: (i) => F[D.albums[i][0]],
  tracks: (i) => D.albums[i][1],
  majority: (i) => D.albums[i][3] < 0 ? "\uffff" : G[D.albums[i][3]].toLowerCase(),
  agreement: (i) => agreement(D.albums[i]),
  existing: (i) => D.albums[i][6] < 0 ? "\uffff" : G[D.albums[i][6]].toLowerCase(),
};
function agreement(a){ return a[2] ? a[4] / a[2] : 2; }
function flagged(a){ return a[2] >= 2 && a[4] / a[2] < D.flag; }

function refilter(){
  const q = state.q.trim().toLowerCase();
  const words = q ? q.split(/\s+/) : [];
  shown = [];
  if (state.view === "files"){
    const acts = new Set([...state.actions].map((a) => A.indexOf(a)));
    for (let i = 0; i < D.rows.length; i++){
      if (!acts.has(D.rows[i][2])) continue;
      if (words.length){ const h = haystack(i); if (!words.every((w) => h.includes(w))) continue; }
      shown.push(i);
    }
    const s = state.sort.files;
    if (s.key){ const f = FILE_KEYS[s.key]; const keyed = shown.map((i) => [f(i), i]);
      keyed.sort((x, y) => s.dir * cmp(x[0], y[0]) || x[1] - y[1]); shown = keyed.map((x) => x[1]); }
  } else {
    for (let i = 0; i < D.albums.length; i++){
      const a = D.albums[i];
      if (state.onlyFlagged && !flagged(a)) continue;
      if (words.length){ const h = (F[a[0]] + " " + (a[3] >= 0 ? G[a[3]] : "") + " " + a[5].map((x) => G[x[0]]).join(" ")).toLowerCase();
        if (!words.every((w) => h.includes(w))) continue; }
      shown.push(i);
    }
    const s = state.sort.albums;
    if (s.key){ const f = ALBUM_KEYS[s.key]; const keyed = shown.map((i) => [f(i), i]);
      keyed.sort((x, y) => s.dir * cmp(x[0], y[0]) || x[1] - y[1]); shown = keyed.map((x) => x[1]); }
  }
  state.page = 0;
  draw();
}

function fileRow(i){
  const r = D.rows[i], act = A[r[2]], c = COLOUR[act] || "#555";
  let pred = "";
  const written = new Set(r[6]);
  if (r[5].length){
    const g = r[5][0], m = r[5][1];
    pred = '<div class="pred' + (written.has(g) ? ' w' : '') + '"><span class="g">' + esc(G[g]) + '</span><span class="s"><i style="width:' +
           Math.round(m / 10) + '%"></i></span><span class="v">' + fmt(m) + '</span></div>';
    const rest = [];
    for (let k = 2; k < r[5].length && k < 6; k += 2) rest.push(esc(G[r[5][k]]) + ' ' + fmt(r[5][k + 1]));
    if (rest.length) pred += '<div class="more">' + rest.join(", ") + '</div>';
  }
  const h = r[10];
  if (h && h[0] !== null) {  // how much was heard: adaptive analysis says whether it went past its sample
    const how = h[1] === "adaptive+rest" ? "adaptive, all heard" : h[1] === "adaptive" ? (h[2] ? "adaptive, re-checked" : "adaptive sample") : h[1];
    pred += '<div class="more heard">heard ' + h[0] + ' s' + (how ? ' · ' + esc(how) : '') + '</div>';
  }
  let extra = "";
  if (r[6].length && (act === "would tag" || act === "tagged")) extra = '<div class="reason">writes: <b>' + esc(names(r[6])) + '</b></div>';
  if (r[8]) extra += '<div><a href="' + esc(encodeURI(r[8].split(SEP).join("/"))) + '" target="_blank">explain picture</a></div>';
  return '<tr class="' + (act === "failed" ? "failed" : "") + '" data-i="' + i + '"><td><span class="dir">' + esc(F[r[0]]) + SEP +
    '</span><span class="name">' + esc(r[1]) + '</span></td><td>' + esc(names(r[4])) + '</td><td>' + pred + '</td><td><span class="badge" style="--c:' + c + '">' +
    esc(act) + '</span>' + (r[7] ? '<div class="reason">' + esc(r[7]) + '</div>' : '') + '</td><td class="reason' + (act === "failed" ? " failed-reason" : "") + '">' +
    esc(R[r[3]]) + extra + '</td></tr>';
}

function albumRow(i){
  const a = D.albums[i], fl = flagged(a);
  const pct = a[2] ? Math.round(100 * a[4] / a[2]) : null;
  const colour = pct === null ? "#ccc" : fl ? "#e09100" : "#2e7d32";
  const tops = a[5].slice(0, 4).map((x) => '<span class="chip">' + esc(G[x[0]]) + ' ' + x[1] + '</span>').join("") + (a[5].length > 4 ? ' …' : '');
  return '<tr class="' + (fl ? "flagged" : "") + '" data-i="' + i + '"><td><a href="#files" class="folder" data-folder="' + esc(F[a[0]]) + '">' + esc(F[a[0]]) +
    '</a>' + (a[7] ? '<div class="reason">album: ' + esc(a[7]) + '</div>' : '') + '</td><td>' + a[1] + (a[2] !== a[1] ? ' <span class="reason">(' + a[2] + ' analysed)</span>' : '') + '</td><td>' +
    (a[8] && a[8].length ? '<b>' + esc(a[8].map((g) => G[g]).join("; ")) + '</b> <span class="reason">(album decision)</span>' +
      (a[9].length ? '<div class="reason">kept their own genre: ' + esc(a[9].join(", ")) + '</div>' : '') +
      (a[3] >= 0 ? '<div class="reason">majority of its tracks: ' + esc(G[a[3]]) + '</div>' : '')
     : (a[3] >= 0 ? '<b>' + esc(G[a[3]]) + '</b>' : '—')) +
    '</td><td>' + (pct === null ? '—' : '<div class="agree"><span class="s"><i style="width:' + pct + '%;background:' + colour + '"></i></span>' + pct + '%' +
    (fl ? ' <span class="flag">disagree</span>' : '') + '</div>') + '</td><td>' + tops + '</td><td>' + (a[6] >= 0 ? esc(G[a[6]]) : '') + '</td></tr>';
}

function draw(){
  const files = state.view === "files";
  const table = $(files ? "files-table" : "albums-table");
  const total = files ? D.rows.length : D.albums.length;
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  if (state.page >= pages) state.page = pages - 1;
  const start = state.page * PAGE, end = Math.min(shown.length, start + PAGE);
  const out = [];
  for (let k = start; k < end; k++) out.push(files ? fileRow(shown[k]) : albumRow(shown[k]));
  table.tBodies[0].innerHTML = out.join("");
  const st = $("status");
  st.dataset.shown = shown.length; st.dataset.total = total;
  const what = (files ? "file" : "album") + (shown.length === 1 ? "" : "s");
  let text = shown.length ? ("Showing " + (start + 1).toLocaleString() + "–" + end.toLocaleString() + " of " + shown.length.toLocaleString() + " " + what) : ("No " + what + " match");
  if (shown.length !== total) text += " (filtered from " + total.toLocaleString() + ")";
  if (!files){ const nf = D.albums.filter(flagged).length; text += "; " + nf.toLocaleString() + " album" + (nf === 1 ? "" : "s") + " with disagreeing tracks (under " + Math.round(D.flag * 100) + "% share the majority genre)"; }
  st.textContent = text + ".";
  $("page").textContent = "page " + (state.page + 1) + " of " + pages;
  $("first").disabled = $("prev").disabled = state.page === 0;
  $("next").disabled = $("last").disabled = state.page >= pages - 1;
  for (const th of table.tHead.rows[0].cells){
    const s = state.sort[state.view];
    th.classList.toggle("asc", s.key === th.dataset.sort && s.dir > 0);
    th.classList.toggle("desc", s.key === th.dataset.sort && s.dir < 0);
  }
  saveHash();
}

function setView(v){
  state.view = v;
  $("tab-files").classList.toggle("on", v === "files");
  $("tab-albums").classList.toggle("on", v === "albums");
  $("files-table").hidden = v !== "files";
  $("albums-table").hidden = v !== "albums";
  $("action-filter").hidden = v !== "files";
  $("flag-filter").hidden = v !== "albums";
  refilter();
}

function setActions(only){
  state.actions = new Set(only ? [only] : A);
  for (const cb of document.querySelectorAll("#action-filter input")) cb.checked = state.actions.has(cb.dataset.action);
}

function saveHash(){
  const p = new URLSearchParams();
  if (state.view !== "files") p.set("view", state.view);
  if (state.q) p.set("q", state.q);
  const acts = [...state.actions].filter((a) => document.querySelector('#action-filter input[data-action="' + a + '"]'));
  if (acts.length !== document.querySelectorAll("#action-filter input").length) p.set("action", acts.join(","));
  if (state.onlyFlagged) p.set("flagged", "1");
  const h = p.toString();
  if (("#" + h) !== location.hash && !(h === "" && location.hash === "")) history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
}

function loadHash(){
  const h = location.hash.replace(/^#/, "");
  if (!h || h.indexOf("=") < 0) return false;
  const p = new URLSearchParams(h);
  state.q = p.get("q") || ""; $("q").value = state.q;
  if (p.has("action")){ state.actions = new Set(p.get("action").split(",").filter((a) => A.includes(a)));
    for (const cb of document.querySelectorAll("#action-filter input")) cb.checked = state.actions.has(cb.dataset.action); }
  state.onlyFlagged = p.get("flagged") === "1"; $("only-flagged").checked = state.onlyFlagged;
  state.view = p.get("view") === "albums" ? "albums" : "files";
  return true;
}

let timer = null;
$("q").addEventListener("input", (ev) => { clearTimeout(timer); timer = setTimeout(() => { state.q = ev.target.value; refilter(); }, D.rows.length > 20000 ? 200 : 60); });
$("q").addEventListener("keydown", (ev) => { if (ev.key === "Enter"){ clearTimeout(timer); state.q = ev.target.value; refilter(); } });
for (const cb of document.querySelectorAll("#action-filter input")) cb.addEventListener("change", () => {
  if (cb.checked) state.actions.add(cb.dataset.action); else state.actions.delete(cb.dataset.action); refilter(); });
$("only-flagged").addEventListener("change", (ev) => { state.onlyFlagged = ev.target.checked; refilter(); });
for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => setView(t.dataset.view));
for (const el of document.querySelectorAll(".tile, .show-action")) el.addEventListener("click", (ev) => {
  ev.preventDefault(); setActions(el.dataset.action); state.q = ""; $("q").value = ""; setView("files");
  $("files").scrollIntoView(); });
for (const th of document.querySelectorAll("th[data-sort]")) th.addEventListener("click", () => {
  const s = state.sort[state.view];
  if (s.key === th.dataset.sort) s.dir = -s.dir; else { s.key = th.dataset.sort; s.dir = th.dataset.sort === "score" ? -1 : 1; }
  refilter(); });
$("albums-table").addEventListener("click", (ev) => {
  const a = ev.target.closest("a.folder"); if (!a) return; ev.preventDefault();
  setActions(null); state.q = a.dataset.folder + SEP; $("q").value = state.q; setView("files");
  $("files").scrollIntoView(); });
$("first").addEventListener("click", () => { state.page = 0; draw(); });
$("prev").addEventListener("click", () => { state.page--; draw(); });
$("next").addEventListener("click", () => { state.page++; draw(); });
$("last").addEventListener("click", () => { state.page = 1e9; draw(); });
loadHash();
setView(state.view);
document.body.dataset.ready = "1";
})();
