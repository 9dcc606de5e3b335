// The live job list, a job's detail view (status, progress, stream, result, cancel and
// retry) and the dead-letter list.

import { api, endpoints, explain } from "./api.js";
import { badge, h, jobLink, ms, rawJson, STATES, table, TERMINAL, when } from "./dom.js";
import { renderOutput } from "./results.js";

const PAGE = 50;
const POLL_MS = 1000;

// Inputs of the jobs submitted from this tab: the status object does not carry the input,
// and the audio player and the PD plot need it.
const submitted = new Map();

export function remember(jobId, input) {
  submitted.set(jobId, input);
}

function select(name, options, value, onchange) {
  return h("select", { name, onchange },
    h("option", { value: "" }, `all ${name}s`),
    options.map((o) => h("option", { value: o, selected: o === value }, o)));
}

export function jobListView(main, params) {
  const filter = { endpoint: params.get("endpoint") ?? "", status: params.get("status") ?? "" };
  let limit = PAGE;
  const body = h("div");
  const more = h("button", { type: "button", hidden: true, onclick: () => { limit += PAGE; view.refresh(); } },
    "Show older jobs");
  const controls = h("p", { class: "controls" });
  main.append(h("h2", {}, "Jobs"), controls, body, more);
  const view = {
    async refresh() {
      const catalog = await endpoints();
      if (!controls.childElementCount) {
        const change = (key) => (event) => {
          filter[key] = event.target.value;
          limit = PAGE;
          view.refresh();
        };
        controls.append(select("endpoint", Object.keys(catalog), filter.endpoint, change("endpoint")),
          " ", select("status", STATES, filter.status, change("status")));
      }
      const path = filter.endpoint ? `v2/${encodeURIComponent(filter.endpoint)}/jobs` : "v2/jobs";
      const page = await api(path, { query: { limit, status: filter.status } });
      const rows = page.jobs.map((j) => [when(j.createdAt), jobLink(j.endpointId, j.id),
        j.endpointId, badge(j.status), ms(j.delayTime), ms(j.executionTime), j.retries]);
      body.replaceChildren(page.jobs.length
        ? table(["Created", "Job", "Endpoint", "Status", "Delay", "Execution", "Retries"], rows,
          { class: "jobs" })
        : h("p", { class: "note" }, "No jobs yet."));
      more.hidden = !page.next;
    },
  };
  return view;
}

/** Progress while running: the status object's `output` before the job ends. */
function progress(status) {
  return status.status === "IN_PROGRESS" && status.output !== undefined && status.output !== null
    ? h("p", { class: "progress" }, "Progress: ", h("code", {}, JSON.stringify(status.output)))
    : null;
}

function outcome(status, family, input) {
  if (status.status === "COMPLETED") return renderOutput(family, status.output, input);
  if (status.status === "FAILED") {
    return h("p", { class: "error failed" }, `Job failed: ${status.error ?? "no error given"}`);
  }
  return h("p", { class: "note" }, status.status === "CANCELLED"
    ? "Cancelled before it finished." : "Timed out: it ran past its execution timeout.");
}

export function jobView(main, endpointId, jobId) {
  const base = `v2/${encodeURIComponent(endpointId)}`;
  const state = h("div", { class: "state" });
  const actions = h("p", { class: "actions" });
  const live = h("div");
  const chunks = h("ol", { class: "chunks" });
  const streamBox = h("section", { hidden: true }, h("h3", {}, "Stream"), chunks);
  const result = h("div", { class: "result" });
  const error = h("p", { class: "error", role: "status" });
  main.append(h("h2", {}, "Job ", h("code", {}, jobId), " on ",
    h("a", { href: `#/submit/${encodeURIComponent(endpointId)}` }, endpointId)),
  state, actions, error, live, streamBox, result);
  let ended = false; // the result is drawn: nothing changes until a retry
  const input = submitted.get(jobId);

  async function act(verb) {
    error.textContent = "";
    try {
      await api(`${base}/${verb}/${encodeURIComponent(jobId)}`, { method: "POST" });
      ended = false;
      await view.refresh();
    } catch (e) {
      error.textContent = explain(e);
    }
  }

  // /stream hands each chunk out once: drain it only for jobs submitted from this tab,
  // never from another client's job.
  async function drainStream() {
    const body = await api(`${base}/stream/${encodeURIComponent(jobId)}`);
    for (const chunk of body.stream) chunks.append(h("li", {}, JSON.stringify(chunk.output)));
    streamBox.hidden = !chunks.childElementCount;
  }

  const view = {
    everyMs: POLL_MS,
    async refresh() {
      if (ended) return;
      const status = await api(`${base}/status/${encodeURIComponent(jobId)}`);
      const family = (await endpoints())[endpointId]?.family ?? "handler";
      state.replaceChildren(badge(status.status), ` delay ${ms(status.delayTime)} · execution `,
        `${ms(status.executionTime)} · retries ${status.retries ?? 0}`);
      actions.replaceChildren(...[
        !TERMINAL.has(status.status) && h("button", { type: "button", class: "cancel",
          onclick: () => act("cancel") }, "Cancel"),
        ["FAILED", "TIMED_OUT"].includes(status.status) && h("button", { type: "button",
          class: "retry", onclick: () => act("retry") }, "Retry")].filter(Boolean));
      live.replaceChildren(progress(status) ?? "");
      if (input !== undefined && family === "handler") await drainStream();
      if (TERMINAL.has(status.status)) {
        ended = true;
        result.replaceChildren(outcome(status, family, input), rawJson(status, "Status object"));
      } else {
        result.replaceChildren();
      }
    },
  };
  return view;
}

export function deadLetterView(main) {
  const body = h("div");
  const error = h("p", { class: "error", role: "status" });
  main.append(h("h2", {}, "Dead letter"),
    h("p", { class: "note" }, "FAILED jobs per endpoint, newest first: handler errors and " +
      "jobs whose lease ran out too often. Retry queues one again."), error, body);
  return {
    async refresh() {
      const ids = Object.keys(await endpoints());
      const lists = await Promise.all(ids.map((id) =>
        api(`v2/${encodeURIComponent(id)}/dead-letter`, { query: { limit: PAGE } })
          .catch((error) => error)));
      body.replaceChildren(...ids.map((id, i) => {
        const jobs = lists[i];
        if (jobs instanceof Error) return h("p", { class: "error" }, `${id}: ${explain(jobs)}`);
        if (!jobs.length) return null;
        const retry = (jobId) => h("button", { type: "button", onclick: async () => {
          try {
            await api(`v2/${encodeURIComponent(id)}/retry/${encodeURIComponent(jobId)}`,
              { method: "POST" });
            location.hash = `#/job/${encodeURIComponent(id)}/${encodeURIComponent(jobId)}`;
          } catch (e) {
            error.textContent = explain(e);
          }
        } }, "Retry");
        return h("section", { "data-endpoint": id }, h("h3", {}, id),
          table(["Job", "Error", "Retries", "Execution", ""], jobs.map((j) => [
            jobLink(id, j.id), h("span", { class: "error" }, j.error ?? ""), j.retries,
            ms(j.executionTime), retry(j.id)]), { class: "dead-letter" }));
      }).filter(Boolean));
      if (!body.childElementCount) body.append(h("p", { class: "note" }, "No failed jobs."));
    },
  };
}
