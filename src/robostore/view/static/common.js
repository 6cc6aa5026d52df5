// Helpers shared by the viewer's pages.
"use strict";

class ApiError extends Error {
  constructor(type, message) { super(message); this.type = type; }
}

// GET a JSON document of the viewer's API; robostore errors arrive as {error, message}.
async function api(path) {
  const response = await fetch(path);
  let body;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    if (body && body.error) throw new ApiError(body.error, body.message);
    throw new ApiError("HTTP " + response.status, path + ": " + response.statusText);
  }
  return body;
}

// Show an error as the command line prints it: its class, then the message.
function showError(err) {
  const box = document.getElementById("error");
  box.hidden = false;
  box.textContent = "";
  const type = document.createElement("b");
  type.className = "error-type";
  type.textContent = err.type || err.name || "Error";
  box.append(type, ": " + (err.message || String(err)));
  window.viewerError = {type: type.textContent, message: err.message || String(err)};
}

// el("td", {className: "x"}, "text", child, ...)
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return "[" + value.map(fmt).join(", ") + "]";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  return String(value);
}

function humanBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}
