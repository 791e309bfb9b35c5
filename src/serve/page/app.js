// The page of `engine serve`: a game's view from the server, drawn; the person's clicks and
// keys sent as moves; engine seats asked to move one at a time, after a pause (the pace).
// The server holds the game: the page keeps only its id (in the URL fragment and
// localStorage), so a reload resumes it.
"use strict";

const SUITS = ["♠", "♥", "♣", "♦"];
const SUIT_NAMES = ["spades", "hearts", "clubs", "diamonds"];
const RANKS = ["2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A"];
const STORE = "engine-serve-game";

let gameId = null;
let view = null;
let selected = 0; // index into the choices (bids or hand cards) that the arrow keys move
let busy = false; // a request on the game is in flight
let engineTimer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.dataset[k.slice(5).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = v;
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

const cardName = (c) => RANKS[c % 13] + SUITS[Math.floor(c / 13)];
const isRed = (c) => Math.floor(c / 13) % 2 === 1;
const me = () => view.settings.seat;
const seatName = (s) => (s === me() ? "You" : `Engine ${s}`);
// The network's value (−1..1) as round points: value = 2·score/23 − 1.
const points = (v) => ((v + 1) * 23) / 2;

function cardFace(c, attrs = {}) {
  return el("span", { class: "card" + (isRed(c) ? " red" : ""), title: cardName(c), ...attrs }, cardName(c));
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    const e = new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    e.code = data.error && data.error.code;
    throw e;
  }
  return data;
}

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
  m.hidden = !text;
}

function setBusy(b) {
  busy = b;
  $("game").dataset.busy = b ? "1" : "0";
}

// ---- setup ---------------------------------------------------------------------------------

function maxCards(players) {
  return Math.min(13, Math.floor(52 / players));
}

function fillSetup() {
  const players = Number($("players").value);
  const fill = (select, values, chosen, label) => {
    select.replaceChildren(...values.map((v) => el("option", { value: v, selected: v === chosen }, label(v))));
  };
  const cards = Number($("cards").value) || 5;
  const max = maxCards(players);
  fill($("cards"), [...Array(max).keys()].map((i) => i + 1), Math.min(cards, max), String);
  const seat = Math.min(Number($("seat").value) || 0, players - 1);
  fill($("seat"), [...Array(players).keys()], seat, (s) => `seat ${s}`);
  $("cards-label").textContent = $("mode").value === "game" ? "Cards in the first round" : "Cards per player";
  $("custom-strength").hidden = $("strength").value !== "custom";
}

function showSetup() {
  clearTimeout(engineTimer);
  gameId = null;
  view = null;
  $("game").hidden = true;
  $("new-game").hidden = true;
  $("setup").hidden = false;
  history.replaceState(null, "", location.pathname);
}

async function startGame(event) {
  event.preventDefault();
  const body = {
    players: Number($("players").value),
    seat: Number($("seat").value),
    mode: $("mode").value,
    cards: Number($("cards").value),
  };
  if ($("strength").value === "custom") {
    body.dets = Number($("dets").value);
    body.sims = Number($("sims").value);
  } else {
    body.preset = $("strength").value;
  }
  localStorage.setItem(STORE + "-pace", $("pace").value);
  try {
    const v = await api("POST", "/api/games", body);
    say("");
    show(v);
  } catch (e) {
    say(`Cannot start the game: ${e.message}`, true);
  }
}

// ---- the game ------------------------------------------------------------------------------

function show(v) {
  view = v;
  gameId = v.id;
  localStorage.setItem(STORE, gameId);
  if (location.hash !== "#" + gameId) history.replaceState(null, "", "#" + gameId);
  $("setup").hidden = true;
  $("game").hidden = false;
  $("new-game").hidden = false;
  selected = 0;
  render();
  scheduleEngine();
}

function myTurn() {
  return view && view.to_act === me() && !busy;
}

/// The moves the arrow keys choose from: bids while bidding, hand cards while playing.
function choices() {
  if (!view || view.to_act !== me()) return [];
  if (view.phase === "bid") return [...Array(view.cards_dealt + 1).keys()];
  return view.hand;
}

function render() {
  const v = view;
  const game = $("game");
  game.dataset.phase = v.phase;
  game.dataset.toAct = v.to_act === null ? "" : String(v.to_act);
  game.dataset.gameOver = v.game_over ? "1" : "0";
  setBusy(busy);

  $("round-info").textContent =
    `Round ${v.round + 1} of ${v.rounds} · ${v.cards_dealt} card${v.cards_dealt > 1 ? "s" : ""} each · dealer: ${seatName(v.dealer)}`;
  $("trump").replaceChildren(
    "Trump: ",
    v.trump === null ? "none" : el("span", { class: v.trump % 2 ? "red" : "", title: SUIT_NAMES[v.trump] }, `${SUITS[v.trump]} ${SUIT_NAMES[v.trump]}`),
  );
  $("status").textContent = statusText();

  renderTable();
  renderTrick();
  renderHand();
  renderHint(null);
  renderReasoning();
  renderScores();

  $("hint-button").disabled = v.to_act !== me();
  $("next-round").hidden = !(v.phase === "over" && !v.game_over);
  const download = $("download");
  download.hidden = !v.game_over;
  download.href = `/api/games/${v.id}/record`;
  download.download = `blob-${v.id.slice(0, 8)}.jsonl`;
}

function statusText() {
  const v = view;
  if (v.game_over) {
    const best = v.totals.reduce((b, t, s) => (t > v.totals[b] ? s : b), 0);
    const who = best === me() ? "You win" : `${seatName(best)} wins`;
    return `Game over: ${who} with ${v.totals[best]} points`;
  }
  if (v.phase === "over") return "Round over: deal the next round";
  if (v.to_act === me()) return v.phase === "bid" ? "Your bid" : "Your card";
  return `${seatName(v.to_act)} is thinking…`;
}

function renderTable() {
  const v = view;
  const seats = [];
  for (let s = 0; s < v.settings.players; s++) {
    const bid = v.bids[s];
    const classes = ["seat"];
    if (s === v.to_act) classes.push("to-act");
    if (s === me()) classes.push("you");
    const name = el("div", { class: "name" }, seatName(s));
    if (s === v.dealer) name.append(el("span", { class: "badge", title: "dealer" }, "D"));
    seats.push(
      el(
        "div",
        { class: classes.join(" "), "data-seat": String(s) },
        name,
        el("div", { class: "facts" }, "bid ", el("b", { class: "bid-value" }, bid === null ? "–" : String(bid)), " · won ", el("b", { class: "won" }, String(v.tricks_won[s]))),
        el("div", { class: "facts" }, el("span", { class: "cards-left" }, String(v.hand_sizes[s])), " cards · total ", el("span", { class: "total" }, String(v.totals[s]))),
      ),
    );
  }
  $("table").replaceChildren(...seats);
}

function renderTrick() {
  const v = view;
  let trick = v.current_trick;
  let title = trick.cards.length ? `Trick led by ${seatName(trick.leader)}` : "Trick";
  if (!trick.cards.length && v.last_trick) {
    trick = v.last_trick;
    title = `${seatName(trick.winner)} won the last trick`;
  } else if (!trick.cards.length) {
    title = v.phase === "bid" ? "Bidding" : trick.leader === me() ? "You lead" : `${seatName(trick.leader)} leads`;
  }
  $("trick-title").textContent = title;
  $("trick").replaceChildren(
    ...trick.cards.map(([s, c]) =>
      el("div", { class: "played", "data-seat": String(s) }, cardFace(c, trick.winner === s ? { class: "card winner" + (isRed(c) ? " red" : "") } : {}), el("div", {}, seatName(s))),
    ),
  );
}

function renderHand() {
  const v = view;
  const mine = v.to_act === me();
  const legal = new Set(v.legal_actions);
  const options = choices();
  selected = Math.min(selected, Math.max(options.length - 1, 0));
  const bids = $("bids");
  if (v.phase === "bid" && mine) {
    bids.replaceChildren(
      ...options.map((b, i) =>
        el("button", {
          type: "button",
          class: "bid" + (legal.has(b) ? " legal" : "") + (i === selected ? " selected" : ""),
          "data-bid": String(b),
          title: legal.has(b) ? `bid ${b}` : `bid ${b} (not allowed)`,
          onclick: () => play(b),
        }, String(b)),
      ),
    );
  } else {
    bids.replaceChildren();
  }
  $("hand-title").textContent = mine && v.phase === "bid" ? "Your hand: how many tricks will you take?" : "Your hand";
  const playing = v.phase === "play" && mine;
  $("hand").replaceChildren(
    ...v.hand.map((c, i) => {
      const classes = ["card"];
      if (isRed(c)) classes.push("red");
      if (playing) classes.push(legal.has(c) ? "legal" : "illegal");
      if (playing && i === selected) classes.push("selected");
      return el("button", { type: "button", class: classes.join(" "), "data-card": String(c), title: cardName(c), onclick: () => play(c) }, cardName(c));
    }),
  );
}

function moveLabel(phase, action) {
  return phase === "bid" ? `bid ${action}` : cardName(action);
}

/// One analysis answer as a table: each legal move's visit share and value.
function analysisTable(table, analysis) {
  const head = el("thead", {}, el("tr", {}, el("th", {}, "move"), el("th", {}, "visits"), el("th", {}, "value"), el("th", { title: "expected round points" }, "≈ points")));
  const moves = analysis.moves.slice().sort((a, b) => b.visits - a.visits);
  const rows = moves.map((m) => {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${(m.share * 4).toFixed(2)}rem`;
    return el(
      "tr",
      { class: m.action === analysis.best_action ? "best" : "", "data-action": String(m.action) },
      el("td", {}, moveLabel(analysis.phase, m.action)),
      el("td", { class: "share" }, bar, `${Math.round(m.share * 100)}%`),
      el("td", {}, m.value === null ? "–" : m.value.toFixed(2)),
      el("td", {}, m.value === null ? "–" : points(m.value).toFixed(1)),
    );
  });
  table.replaceChildren(head, el("tbody", {}, ...rows));
}

function renderHint(hint) {
  $("hint-panel").hidden = !hint;
  if (hint) analysisTable($("hint"), hint);
}

function renderReasoning() {
  const last = view.last_engine_move;
  $("reasoning-panel").hidden = !last;
  if (!last) return;
  const a = last.analysis;
  $("reasoning-title").textContent =
    `${seatName(last.seat)} ${a.phase === "bid" ? "bid" : "played"} ${a.phase === "bid" ? last.action : cardName(last.action)} (${a.stats.simulations} simulations)`;
  analysisTable($("reasoning"), a);
}

function renderScores() {
  const v = view;
  const names = [...Array(v.settings.players).keys()].map((s) => el("th", {}, seatName(s)));
  const head = el("thead", {}, el("tr", {}, el("th", {}, "round"), el("th", {}, "cards"), el("th", {}, "trump"), ...names));
  const rows = v.scores.map((r, i) =>
    el(
      "tr",
      { "data-round": String(i) },
      el("td", {}, String(i + 1)),
      el("td", {}, String(r.cards)),
      el("td", { class: r.trump !== null && r.trump % 2 ? "red" : "" }, r.trump === null ? "–" : SUITS[r.trump]),
      ...r.scores.map((score, s) => el("td", { title: `bid ${r.bids[s]}, won ${r.tricks_won[s]}` }, `${r.bids[s]}/${r.tricks_won[s]} → ${score}`)),
    ),
  );
  const totals = el("tr", { class: "totals" }, el("td", {}, "total"), el("td"), el("td"), ...v.totals.map((t, s) => el("td", { "data-seat": String(s) }, String(t))));
  $("scores").replaceChildren(head, el("tbody", {}, ...rows, totals));
}

// ---- moves ---------------------------------------------------------------------------------

async function request(method, path, body) {
  setBusy(true);
  try {
    return await api(method, path, body);
  } finally {
    setBusy(false);
  }
}

async function play(action) {
  if (!myTurn()) return;
  try {
    const v = await request("POST", `/api/games/${gameId}/move`, { action });
    say("");
    show(v);
  } catch (e) {
    say(`Not allowed: ${e.message}`, true);
  }
}

async function hint() {
  if (!myTurn()) return;
  $("hint-button").disabled = true;
  try {
    const answer = await request("POST", `/api/games/${gameId}/hint`);
    renderHint(answer.hint);
  } catch (e) {
    say(`No hint: ${e.message}`, true);
  } finally {
    $("hint-button").disabled = view.to_act !== me();
  }
}

async function nextRound() {
  if (!view || view.phase !== "over" || view.game_over || busy) return;
  try {
    show(await request("POST", `/api/games/${gameId}/next`));
  } catch (e) {
    say(e.message, true);
  }
}

function pace() {
  return Number(localStorage.getItem(STORE + "-pace") ?? 800);
}

/// When an engine seat is to act, asks for its move after the pace's pause.
function scheduleEngine() {
  clearTimeout(engineTimer);
  const v = view;
  if (v.phase === "over" || v.to_act === null || v.to_act === me()) return;
  const id = gameId;
  setBusy(true);
  engineTimer = setTimeout(async () => {
    try {
      const next = await request("POST", `/api/games/${id}/engine`);
      if (id === gameId) show(next);
    } catch (e) {
      say(`The engine could not move: ${e.message}`, true);
    }
  }, pace());
}

async function resume(id) {
  try {
    show(await api("GET", `/api/games/${id}`));
  } catch (e) {
    localStorage.removeItem(STORE);
    showSetup();
    say(e.code === "unknown_game" ? "That game has expired: start a new one." : `Cannot resume the game: ${e.message}`, true);
  }
}

function onKey(event) {
  if (!view || $("game").hidden || event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const options = choices();
  const key = event.key;
  if (/^[0-9]$/.test(key) && view.phase === "bid") {
    play(Number(key));
  } else if ((key === "ArrowRight" || key === "ArrowLeft") && options.length) {
    selected = (selected + (key === "ArrowRight" ? 1 : options.length - 1)) % options.length;
    renderHand();
  } else if ((key === "Enter" || key === " ") && options.length) {
    play(options[selected]);
  } else if (key === "h" || key === "H") {
    hint();
  } else if (key === "n" || key === "N") {
    nextRound();
  } else {
    return;
  }
  event.preventDefault();
}

function init() {
  $("players").replaceChildren(...[3, 4, 5, 6, 7, 8].map((p) => el("option", { value: p, selected: p === 4 }, String(p))));
  $("pace").value = String(pace());
  for (const id of ["players", "mode", "strength"]) $(id).addEventListener("change", fillSetup);
  fillSetup();
  $("setup").addEventListener("submit", startGame);
  $("new-game").addEventListener("click", () => {
    localStorage.removeItem(STORE);
    say("");
    showSetup();
  });
  $("hint-button").addEventListener("click", hint);
  $("next-round").addEventListener("click", nextRound);
  document.addEventListener("keydown", onKey);
  const id = location.hash.slice(1) || localStorage.getItem(STORE);
  if (id) resume(id);
  else showSetup();
}

init();
