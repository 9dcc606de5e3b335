// The console: hash routes to views, each refreshing itself until another is opened.

import { apiKey, explain, say, unsay } from "./api.js";
import { submitView } from "./form.js";
import { deadLetterView, jobListView, jobView } from "./jobs.js";
import { overviewView } from "./overview.js";

const REFRESH_MS = 3000;

// #/overview, #/submit/<endpoint>, #/jobs?endpoint=&status=, #/job/<endpoint>/<id>,
// #/dead-letter
const ROUTES = {
  overview: (main) => overviewView(main),
  submit: (main, [endpoint]) => submitView(main, endpoint),
  jobs: (main, _, params) => jobListView(main, params),
  job: (main, [endpoint, id]) => jobView(main, endpoint, id),
  "dead-letter": (main) => deadLetterView(main),
};

let current = 0; // bumped on every route: an older loop sees it and stops

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function keepRefreshing(view, token) {
  while (token === current) {
    try {
      await view.refresh();
      unsay("refresh");
    } catch (error) {
      // 401 and 429 are already in the message bar, in their own words.
      if (token === current && ![401, 429].includes(error.status)) say("refresh", explain(error));
    }
    await sleep(view.everyMs ?? REFRESH_MS);
  }
}

function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/").map(decodeURIComponent);
  const open = ROUTES[name] ?? ROUTES.overview;
  const main = document.getElementById("view");
  main.replaceChildren();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#/${name}`);
  }
  current += 1;
  keepRefreshing(open(main, rest, new URLSearchParams(query ?? "")), current);
}

const keyInput = document.getElementById("api-key");
keyInput.value = apiKey.get();
document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey.set(keyInput.value.trim());
  route();
});
window.addEventListener("hashchange", route);
route();
