// Every endpoint with its /health counts, and the model deployments' replicas.

import { api, endpoints, explain } from "./api.js";
import { h, table } from "./dom.js";

const COUNTS = [["inQueue", "queued"], ["inProgress", "running"], ["completed", "completed"],
  ["failed", "failed"], ["retried", "retried"]];

function card(id, endpoint, health) {
  const counts = health instanceof Error
    ? h("p", { class: "error" }, `health: ${explain(health)}`)
    : h("dl", { class: "counts" }, COUNTS.map(([field, label]) => h("div", {},
      h("dt", {}, label), h("dd", { "data-count": field }, health.jobs[field]))));
  return h("article", { class: "card", "data-endpoint": id },
    h("h3", {}, id, " ", h("span", { class: "family" }, endpoint.family)),
    h("p", { class: "route" }, endpoint.route ? `direct: POST ${endpoint.route}` : "jobs only"),
    counts,
    h("p", {}, h("a", { class: "button", href: `#/submit/${encodeURIComponent(id)}` }, "New job"),
      " ", h("a", { href: `#/jobs?endpoint=${encodeURIComponent(id)}` }, "Jobs")));
}

async function replicaTable() {
  let body;
  try {
    body = await api("console/api/replicas");
  } catch (error) {
    return h("p", { class: "error" }, `replicas: ${explain(error)}`);
  }
  const rows = Object.entries(body.deployments).map(([name, d]) => [
    name, d.status, h("span", { "data-running": name }, d.running),
    Object.entries(d.replicas).map(([state, n]) => `${state} ${n}`).join(", ")]);
  return table(["Deployment", "Status", "Running replicas", "Replicas by state"], rows,
    { class: "replicas" });
}

export function overviewView(main) {
  const cards = h("div", { class: "cards" });
  const replicas = h("div");
  main.append(h("h2", {}, "Endpoints"), cards,
    h("h2", {}, "Model replicas"), replicas,
    h("p", { class: "note" }, "Queue depth is the queued count; refreshes by itself."));
  return {
    async refresh() {
      const catalog = await endpoints();
      const ids = Object.keys(catalog);
      const [health, replicaNode] = await Promise.all([
        Promise.all(ids.map((id) => api(`v2/${encodeURIComponent(id)}/health`)
          .catch((error) => error))),
        replicaTable()]);
      cards.replaceChildren(...ids.map((id, i) => card(id, catalog[id], health[i])));
      replicas.replaceChildren(replicaNode);
    },
  };
}
