// A submit form per endpoint, built from its input JSON Schema and prefilled with its
// example; fields that take a file's contents get a file picker.

import { api, endpoints, explain } from "./api.js";
import { h } from "./dom.js";
import { remember } from "./jobs.js";

const SIMPLE = new Set(["string", "number", "integer", "boolean"]);
// Longer JSON is written on one line: pretty-printing a signal would fill the page.
const PRETTY_MAX_CHARS = 2000;

function resolve(schema, root) {
  while (schema?.$ref) schema = root.$defs?.[schema.$ref.split("/").pop()];
  return schema ?? {};
}

/** What input a property needs: a simple type, an enum, or JSON for anything else. */
function kindOf(schema, root) {
  const options = (schema.anyOf ?? schema.oneOf ?? [schema]).map((s) => resolve(s, root));
  const present = options.filter((o) => o.type !== "null");
  const only = present.length === 1 ? present[0] : null;
  if (only?.enum) return { kind: "enum", values: only.enum };
  if (only?.const !== undefined) return { kind: "enum", values: [only.const] };
  if (only && SIMPLE.has(only.type)) return { kind: only.type, min: only.minimum, max: only.maximum };
  return { kind: "json" };
}

function asJson(value) {
  const compact = JSON.stringify(value);
  return compact.length > PRETTY_MAX_CHARS ? compact : JSON.stringify(value, null, 2);
}

/** base64 or a data: URI of a chosen file, as the endpoint's `files` entry says. */
function readFile(file, encoding) {
  return new Promise((resolvePromise, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const uri = reader.result;
      resolvePromise(encoding === "data-uri" ? uri : uri.slice(uri.indexOf(",") + 1));
    };
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// A field: its row, `set(value)` and `read()` (undefined: leave the property out).
function field(name, schema, root, required, fileSpec) {
  const { kind, values, min, max } = kindOf(schema, root);
  const id = `field-${name}`;
  const fallback = schema.default ?? null;
  let input;
  let read;
  let set;
  if (kind === "boolean") {
    input = h("input", { id, name, type: "checkbox" });
    set = (v) => { input.checked = Boolean(v ?? fallback); };
    read = () => input.checked;
  } else if (kind === "enum") {
    input = h("select", { id, name }, h("option", { value: "" }, "(default)"),
      values.map((v, i) => h("option", { value: String(i) }, String(v))));
    set = (v) => { input.value = values.includes(v) ? String(values.indexOf(v)) : ""; };
    read = () => (input.value === "" ? undefined : values[Number(input.value)]);
  } else if (kind === "number" || kind === "integer") {
    input = h("input", { id, name, type: "number", step: kind === "integer" ? 1 : "any", min, max });
    set = (v) => { input.value = v ?? ""; };
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (kind === "string") {
    input = h("input", { id, name, type: "text", spellcheck: "false" });
    set = (v) => { input.value = v ?? ""; };
    read = () => (input.value === "" ? undefined : input.value);
  } else {
    input = h("textarea", { id, name, rows: 4, spellcheck: "false" });
    set = (v) => { input.value = v === undefined || v === null ? "" : asJson(v); };
    read = () => {
      if (!input.value.trim()) return undefined;
      try {
        return JSON.parse(input.value);
      } catch (error) {
        throw new Error(`${name}: not valid JSON (${error.message})`);
      }
    };
  }
  let pending = Promise.resolve();
  const note = h("span", { class: "note" });
  const picker = fileSpec && h("span", { class: "file" }, "or a file: ",
    h("input", {
      type: "file", accept: fileSpec.accept, "data-field": name,
      onchange: (event) => {
        const file = event.target.files[0];
        if (!file) return;
        note.textContent = `reading ${file.name}…`;
        pending = readFile(file, fileSpec.encoding).then((text) => {
          input.value = text;
          note.textContent = `${file.name}, ${Math.ceil(file.size / 1024)} kB, as ` +
            `${fileSpec.encoding}`;
        });
      },
    }));
  const help = schema.description ?? (schema.default !== undefined && schema.default !== null
    ? `default: ${JSON.stringify(schema.default)}` : "");
  const row = h("div", { class: `field ${kind}` },
    h("label", { for: id }, name, required ? " *" : ""),
    input, picker, note, help && h("small", {}, help));
  return {
    name, row, set,
    async read() {
      await pending;
      return read();
    },
    // A checkbox left at its default is left out, so the server's default applies.
    untouched: () => kind === "boolean" && input.checked === Boolean(fallback),
  };
}

/** The form for one endpoint; submitting queues a job and opens it. */
function jobForm(id, endpoint) {
  const schema = endpoint.input_schema;
  const required = new Set(schema?.required ?? []);
  const fields = Object.entries(schema?.properties ?? {}).map(([name, property]) =>
    field(name, resolve(property, schema), schema, required.has(name), endpoint.files?.[name]));
  const raw = h("textarea", { name: "raw-input", rows: 10, spellcheck: "false" });
  const asRaw = h("input", { type: "checkbox", name: "as-json", checked: !schema });
  const error = h("p", { class: "error", role: "status" });
  const example = endpoint.example ?? {};
  const given = new Set(Object.keys(example));

  function collectRaw() {
    try {
      return JSON.parse(raw.value || "{}");
    } catch (e) {
      throw new Error(`input: not valid JSON (${e.message})`);
    }
  }

  async function collectFields() {
    const input = {};
    for (const f of fields) {
      const value = await f.read();
      if (value !== undefined && !(f.untouched() && !given.has(f.name))) input[f.name] = value;
    }
    return input;
  }

  function fill(values) {
    for (const f of fields) f.set(values[f.name]);
  }

  fill(example);
  raw.value = asJson(example);
  const fieldset = h("fieldset", { class: "fields", hidden: asRaw.checked }, fields.map((f) => f.row));
  const rawBox = h("div", { class: "raw-input", hidden: !asRaw.checked },
    h("label", {}, "Input (JSON object)"), raw);
  asRaw.addEventListener("change", async () => {
    const toRaw = asRaw.checked;
    error.textContent = "";
    try {
      // The two views are one input: carry the values across.
      if (toRaw) raw.value = asJson(await collectFields());
      else fill(collectRaw());
    } catch (e) {
      error.textContent = e.message;
      asRaw.checked = !toRaw; // stay where the values are
      return;
    }
    fieldset.hidden = toRaw;
    rawBox.hidden = !toRaw;
  });
  const submit = h("button", { type: "submit" }, "Submit job");
  return h("form", {
    class: "job-form",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        const input = asRaw.checked ? collectRaw() : await collectFields();
        const job = await api(`v2/${encodeURIComponent(id)}/run`, { method: "POST", body: { input } });
        remember(job.id, input);
        location.hash = `#/job/${encodeURIComponent(id)}/${encodeURIComponent(job.id)}`;
      } catch (e) {
        error.textContent = explain(e);
      } finally {
        submit.disabled = false;
      }
    },
  }, schema && h("label", { class: "toggle" }, asRaw, " edit as JSON"), fieldset, rawBox,
  h("p", {}, submit), error);
}

export function submitView(main, id) {
  let shown = false;
  return {
    async refresh() {
      if (shown) return;
      const endpoint = (await endpoints())[id];
      shown = true;
      if (!endpoint) {
        main.append(h("p", { class: "error" }, `no endpoint ${id}`));
        return;
      }
      const files = Object.entries(endpoint.files ?? {});
      main.append(
        h("h2", {}, `New job on ${id}`),
        h("p", { class: "note" }, `family ${endpoint.family}; POST ${endpoint.jobs}`,
          files.length ? `; files: ${files.map(([f, s]) => `${f} (${s.accept})`).join(", ")}` : "",
          ". Prefilled with the endpoint's example."),
        jobForm(id, endpoint));
    },
  };
}
