// The HTTP API, as any client uses it: the key from this tab's session storage, errors as
// ApiError, and 401/429 explained in the page's message bar.

// The ingress's root, route prefix included: this file is served at <root>/console/static/.
export const ROOT = new URL("../../", import.meta.url);

const KEY_ITEM = "rsp-console-api-key";
let catalog = null; // GET /endpoints's answer, a promise

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM) ?? "",
  set(value) {
    if (value) sessionStorage.setItem(KEY_ITEM, value);
    else sessionStorage.removeItem(KEY_ITEM);
    catalog = null; // what a key may see differs
  },
};

export class ApiError extends Error {
  constructor(status, message, retryAfterS = null) {
    super(message);
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

/** A sentence for the operator: what went wrong and what to do. */
export function explain(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  if (error.status === 401) {
    return apiKey.get()
      ? `401 Unauthorized: the server refused this API key (${error.message}). Check the key.`
      : "401 Unauthorized: this server needs an API key. Enter it above; it is kept in " +
        "this tab only.";
  }
  if (error.status === 429) {
    const wait = error.retryAfterS ? ` Try again in ${error.retryAfterS} s.` : "";
    return `429 Too many requests: ${error.message}.${wait}`;
  }
  return error.status ? `${error.status}: ${error.message}` : error.message;
}

// The message bar holds one message of a kind; a later success clears its kind.
export function say(kind, text) {
  const bar = document.getElementById("message");
  bar.textContent = text;
  bar.dataset.kind = kind;
  bar.hidden = false;
  document.getElementById("api-key").classList.toggle("needed", kind === "auth");
}

export function unsay(...kinds) {
  const bar = document.getElementById("message");
  if (!bar.hidden && kinds.includes(bar.dataset.kind)) {
    bar.hidden = true;
    document.getElementById("api-key").classList.remove("needed");
  }
}

/** `path` relative to the root ("v2/jobs"), JSON in and out. */
export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(path.replace(/^\//, ""), ROOT);
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const item of [value].flat()) if (item !== undefined && item !== "") {
      url.searchParams.append(name, item);
    }
  }
  const headers = { Accept: "application/json" };
  if (apiKey.get()) headers.Authorization = `Bearer ${apiKey.get()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    // Not our JSON error (a proxy's page, say): its status line, not its HTML.
    const error = new ApiError(response.status, data?.error ?? response.statusText,
      response.headers.get("Retry-After"));
    if (error.status === 401) say("auth", explain(error));
    if (error.status === 429) say("rate", explain(error));
    throw error;
  }
  unsay("auth", "rate");
  return data;
}

/** GET /endpoints, kept once it has answered. */
export async function endpoints() {
  catalog ??= api("endpoints").catch((error) => {
    catalog = null;
    throw error;
  });
  return catalog;
}
