// The dataset page: summary, features, tasks, stats, and the paged episode list.
"use strict";

const PAGE = 50;
const state = {offset: 0, task: "", total: 0, problems: {episodes: {}, state: "running"}, fps: 1};

function card(label, value) {
  return el("div", {className: "card"}, el("div", {className: "value", textContent: value}), el("div", {className: "label", textContent: label}));
}

function renderSummary(d) {
  document.getElementById("url").textContent = d.url;
  document.title = "robostore view: " + d.url;
  state.fps = d.fps;
  const cards = document.getElementById("cards");
  cards.append(
    card("episodes", d.episodes), card("frames", d.frames), card("fps", d.fps),
    card("duration", d.duration_s.toFixed(1) + " s"), card("robot", d.robot_type || "unknown"),
    card("size", humanBytes(d.bytes) + " in " + d.files + " files"), card("version", d.codebase_version));
  const features = document.querySelector("#features tbody");
  for (const [key, f] of Object.entries(d.features)) {
    features.append(el("tr", {}, el("td", {className: "mono key", textContent: key}), el("td", {textContent: f.dtype}),
      el("td", {className: "key", textContent: fmt(f.shape)}),
      el("td", {className: "names", textContent: f.names ? JSON.stringify(f.names) : ""})));
  }
  const tasks = document.getElementById("tasks");
  const select = document.getElementById("task-filter");
  d.tasks.forEach((task) => {
    tasks.append(el("li", {textContent: task}));
    select.append(el("option", {value: task, textContent: task}));
  });
  const stats = document.querySelector("#stats tbody");
  for (const [key, s] of Object.entries(d.stats)) {
    if (d.video_keys.includes(key) || d.image_keys.includes(key)) continue;
    stats.append(el("tr", {}, el("td", {className: "key", textContent: key}),
      ...["mean", "std", "min", "max"].map((name) => el("td", {textContent: fmt(s[name])}))));
  }
  document.getElementById("summary").hidden = false;
}

function badge(index) {
  const found = state.problems.episodes[index];
  if (!found || !found.length) return null;
  return el("span", {className: "badge", title: found.join("\n"), textContent: "\u26a0 " + found.length});
}

async function loadPage() {
  const query = new URLSearchParams({offset: state.offset, limit: PAGE});
  if (state.task) query.set("task", state.task);
  const page = await api("/api/episodes?" + query);
  state.total = page.total;
  const body = document.querySelector("#episodes tbody");
  body.replaceChildren(...page.episodes.map((e) => {
    const row = el("tr", {className: "episode"},
      el("td", {}, el("a", {href: "/episode/" + e.episode_index, textContent: e.episode_index})),
      el("td", {textContent: e.length}), el("td", {textContent: (e.length / state.fps).toFixed(1)}),
      el("td", {textContent: e.tasks.join("; ")}), el("td", {}, badge(e.episode_index)));
    row.dataset.episode = e.episode_index;
    row.addEventListener("click", () => { location.href = "/episode/" + e.episode_index; });
    return row;
  }));
  const last = Math.min(state.offset + PAGE, state.total);
  document.getElementById("page-label").textContent =
    state.total ? `${state.offset + 1}\u2013${last} of ${state.total}` : "no episodes";
  document.getElementById("prev-page").disabled = state.offset === 0;
  document.getElementById("next-page").disabled = last >= state.total;
}

async function watchValidation() {
  const label = document.getElementById("validation");
  while (true) {
    const status = await api("/api/problems");
    state.problems = status;
    if (status.state !== "running") {
      const n = Object.keys(status.episodes).length;
      label.textContent = status.state === "failed" ? "(validation failed)"
        : n ? `(validate: ${n} episode(s) with problems)` : "(validate: no problems)";
      if (status.dataset.length) {
        const box = document.getElementById("dataset-problems");
        box.hidden = false;
        box.textContent = "validate: " + status.dataset.join("\n");
      }
      await loadPage();
      return;
    }
    label.textContent = "(checking files\u2026)";
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main() {
  try {
    renderSummary(await api("/api/dataset"));
    document.getElementById("task-filter").addEventListener("change", (ev) => {
      state.task = ev.target.value; state.offset = 0; loadPage().catch(showError);
    });
    document.getElementById("prev-page").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadPage().catch(showError); });
    document.getElementById("next-page").addEventListener("click", () => { state.offset += PAGE; loadPage().catch(showError); });
    await loadPage();
    window.viewerReady = true;
    await watchValidation();
  } catch (err) {
    showError(err);
    window.viewerReady = true;
  }
}

main();
