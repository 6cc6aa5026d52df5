// The episode page: cameras in sync, one plot per vector feature, a cursor that follows the video.
"use strict";

const COLORS = ["#2f6fd6", "#d64545", "#2e9e5b", "#c7861b", "#8a4fd1", "#1c9aa8", "#d1468f", "#6b7385"];

// The clock is the first video when the episode has videos, a timer otherwise (image cameras only).
class VideoClock {
  constructor(videos) { this.videos = videos; this.master = videos[0]; }
  get time() { return this.master.currentTime; }
  get playing() { return !this.master.paused && !this.master.ended; }
  async play() {
    if (this.master.ended) await this.seek(0);
    await Promise.all(this.videos.map((v) => v.play()));
  }
  pause() {
    for (const v of this.videos) v.pause();
    for (const v of this.videos.slice(1)) v.currentTime = this.master.currentTime;
  }
  seek(t) {
    return Promise.all(this.videos.map((v) => new Promise((resolve) => {
      v.addEventListener("seeked", resolve, {once: true});
      v.currentTime = t;
    })));
  }
  // Followers drift while playing: pull back any that is more than a frame away.
  sync(fps) {
    for (const v of this.videos.slice(1)) {
      if (!v.seeking && Math.abs(v.currentTime - this.master.currentTime) > 1 / fps) v.currentTime = this.master.currentTime;
      if (this.playing && v.paused && !v.ended) v.play().catch(() => {});
    }
  }
}

class TimerClock {
  constructor(duration) { this.duration = duration; this.offset = 0; this.startedAt = null; }
  get time() {
    if (this.startedAt === null) return this.offset;
    const t = this.offset + (performance.now() - this.startedAt) / 1000;
    if (t >= this.duration) { this.offset = this.duration; this.startedAt = null; }
    return Math.min(t, this.duration);
  }
  get playing() { return this.startedAt !== null && this.time < this.duration; }
  async play() { if (this.offset >= this.duration) this.offset = 0; this.startedAt = performance.now(); }
  pause() { this.offset = this.time; this.startedAt = null; }
  async seek(t) { this.offset = t; if (this.startedAt !== null) this.startedAt = performance.now(); }
  sync() {}
}

const viewer = {episode: null, clock: null, videos: [], images: [], plots: {}, frame: -1, firstFrameMs: null};
window.viewer = viewer;

function frameAt(t) {
  const n = viewer.episode.length;
  return Math.max(0, Math.min(n - 1, Math.floor(t * viewer.episode.fps + 1e-6)));
}

// Seek every camera to the middle of frame k (robust to timestamp rounding); resolves when shown.
viewer.seekFrame = async function (k) {
  const n = viewer.episode.length;
  k = Math.max(0, Math.min(n - 1, k));
  viewer.clock.pause();
  await viewer.clock.seek((k + 0.5) / viewer.episode.fps);
  update();
  return k;
};

function update() {
  const t = viewer.clock.time;
  const k = frameAt(t);
  viewer.clock.sync(viewer.episode.fps);
  if (viewer.episode.time) {
    const x = viewer.episode.time[k];
    for (const u of Object.values(viewer.plots)) {
      if (!u.mouseInside) u.setCursor({left: u.valToPos(x, "x"), top: 0});
    }
  }
  if (k !== viewer.frame) {
    viewer.frame = k;
    document.getElementById("scrub").value = k;
    document.getElementById("frame-label").textContent =
      `frame ${k} / ${viewer.episode.length - 1}  t=${(k / viewer.episode.fps).toFixed(3)} s`;
    for (const img of viewer.images) img.src = img.dataset.base + k;
  }
  document.getElementById("play").textContent = viewer.clock.playing ? "pause" : "play";
}

function tick() {
  update();
  requestAnimationFrame(tick);
}

function addCameras(ep) {
  const box = document.getElementById("cameras");
  const loaded = [];
  for (const v of ep.videos) {
    const video = el("video", {muted: true, preload: "auto", playsInline: true, src: v.url});
    video.dataset.key = v.key;
    loaded.push(new Promise((resolve) => {
      if (video.readyState >= 2) resolve(); else video.addEventListener("loadeddata", resolve, {once: true});
    }));
    video.addEventListener("error", () => showError({type: "VideoError", message: `${v.key}: the browser cannot play ${v.url} (${video.error && video.error.message})`}));
    viewer.videos.push(video);
    box.append(el("div", {className: "camera"}, video,
      el("div", {className: "label", textContent: `${v.key}  (${v.path}, ${v.from_timestamp.toFixed(3)}\u2013${v.to_timestamp.toFixed(3)} s)`})));
  }
  for (const i of ep.images) {
    const img = el("img", {alt: i.key});
    img.dataset.base = i.url;
    img.dataset.key = i.key;
    viewer.images.push(img);
    box.append(el("div", {className: "camera"}, img, el("div", {className: "label", textContent: i.key})));
  }
  Promise.all(loaded).then(() => { viewer.firstFrameMs = performance.now(); });
}

function addPlots(ep) {
  const box = document.getElementById("plots");
  const width = Math.max(400, box.clientWidth - 20);
  for (const p of ep.plots) {
    const holder = el("div", {className: "plot"});
    box.append(holder);
    const opts = {
      title: p.key, width, height: 220,
      scales: {x: {time: false}},
      axes: [{label: "seconds"}, {}],
      cursor: {y: false, drag: {x: false, y: false}},
      series: [{label: "t (s)", value: (u, v) => (v === null ? "" : v.toFixed(3))},
        ...p.labels.map((label, i) => ({label, stroke: COLORS[i % COLORS.length], width: 1.5}))],
    };
    const u = new uPlot(opts, [ep.time, ...p.series], holder);
    u.over.addEventListener("mouseenter", () => { u.mouseInside = true; });
    u.over.addEventListener("mouseleave", () => { u.mouseInside = false; });
    u.over.addEventListener("click", () => {
      const t = u.posToVal(u.cursor.left, "x");
      viewer.seekFrame(Math.round(t * ep.fps));
    });
    viewer.plots[p.key] = u;
  }
  window.addEventListener("resize", () => {
    const w = Math.max(400, box.clientWidth - 20);
    for (const u of Object.values(viewer.plots)) u.setSize({width: w, height: 220});
  });
}

function navigate(index) {
  if (index !== null && index !== undefined) location.href = "/episode/" + index;
}

function addControls(ep) {
  const scrub = document.getElementById("scrub");
  scrub.max = ep.length - 1;
  scrub.addEventListener("input", () => viewer.seekFrame(Number(scrub.value)));
  const toggle = () => (viewer.clock.playing ? viewer.clock.pause() : viewer.clock.play().catch(showError));
  document.getElementById("play").addEventListener("click", toggle);
  document.getElementById("step-back").addEventListener("click", () => viewer.seekFrame(viewer.frame - 1));
  document.getElementById("step-forward").addEventListener("click", () => viewer.seekFrame(viewer.frame + 1));
  for (const [id, target] of [["previous", ep.previous], ["next", ep.next]]) {
    const link = document.getElementById(id);
    if (target === null) link.classList.add("disabled"); else link.href = "/episode/" + target;
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
    const keys = {
      " ": toggle,
      ArrowLeft: () => viewer.seekFrame(viewer.frame - 1),
      ArrowRight: () => viewer.seekFrame(viewer.frame + 1),
      ArrowUp: () => navigate(ep.previous),
      ArrowDown: () => navigate(ep.next),
    };
    const action = keys[ev.key];
    if (action) { ev.preventDefault(); action(); }
  });
}

async function showProblems(index) {
  for (;;) {
    const status = await api("/api/problems");
    if (status.state !== "running") {
      const found = (status.episodes[index] || []).concat(status.dataset);
      if (found.length) {
        const box = document.getElementById("episode-problems");
        box.hidden = false;
        box.textContent = "validate: " + found.join("\n");
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main() {
  const index = Number(location.pathname.split("/").pop());
  document.getElementById("title").textContent = "episode " + index;
  try {
    const ep = await api("/api/episode/" + index);
    const data = api(`/api/episode/${index}/data`);  // the plots load while the videos start
    viewer.episode = ep;
    document.getElementById("title").textContent =
      `episode ${index} \u00b7 ${ep.length} frames \u00b7 ${(ep.length / ep.fps).toFixed(1)} s \u00b7 ${ep.tasks.join("; ")}`;
    document.getElementById("episode").hidden = false;
    addCameras(ep);
    viewer.clock = viewer.videos.length ? new VideoClock(viewer.videos) : new TimerClock(ep.length / ep.fps);
    addControls(ep);
    Object.assign(ep, await data);
    addPlots(ep);
    tick();
    viewer.ready = true;
    showProblems(index).catch(() => {});
  } catch (err) {
    showError(err);
    viewer.ready = true;
  }
}

main();
