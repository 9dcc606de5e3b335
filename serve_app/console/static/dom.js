// Building the page: elements from plain values (text is always text, never HTML).

// Set as properties, not attributes: they are the element's live state.
const PROPERTIES = new Set(["value", "checked", "disabled"]);

/** An element: attributes (`on<event>` adds a listener) and children (strings are text). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null && child !== false) element.append(child);
  }
  return element;
}

/** A table from column titles and rows of cells. */
export function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

export const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]);
export const STATES = ["IN_QUEUE", "IN_PROGRESS", ...TERMINAL];

export function badge(status) {
  return h("span", { class: `badge ${status}`, "data-status": status }, status);
}

export function ms(value) {
  return value === undefined || value === null ? "–" : `${value} ms`;
}

export function when(epochMs) {
  return epochMs ? new Date(epochMs).toLocaleTimeString() : "–";
}

export function jobLink(endpoint, id, text = id) {
  return h("a", { href: `#/job/${encodeURIComponent(endpoint)}/${encodeURIComponent(id)}` }, text);
}

export function rawJson(value, summary = "Raw JSON") {
  return h("details", { class: "raw" }, h("summary", {}, summary),
    h("pre", {}, JSON.stringify(value, null, 2)));
}
