// A completed job's output, drawn for its family; raw JSON for any other endpoint.

import { h, rawJson, table } from "./dom.js";
import { plotSignal, signalsOf } from "./pd.js";

const ipa = (phones) => `/${phones.join("")}/`;

function g2p(out) {
  return h("div", { class: "g2p" },
    h("p", {}, "Utterance: ", h("code", { class: "ipa" }, out.ipa),
      h("span", { class: "note" }, ` (${out.language}, ${out.backend})`)),
    table(["Word", "IPA", "Phones"], out.words.map((w) => [w.word,
      h("span", { class: "ipa" }, ipa(w.phones)), w.phones.join(" ")]), { class: "words" }));
}

// The first base64 characters of each container's magic bytes.
const AUDIO_MAGIC = [["UklGR", "audio/wav"], ["ZkxhQ", "audio/flac"], ["T2dnU", "audio/ogg"]];

/** The submitted audio as something an <audio> element plays, if it can. */
function audioSource(input) {
  if (input?.audio) {
    if (input.audio.startsWith("data:")) return input.audio;
    const type = AUDIO_MAGIC.find(([magic]) => input.audio.startsWith(magic))?.[1] ?? "audio/mpeg";
    return `data:${type};base64,${input.audio}`;
  }
  return /^https?:\/\//.test(input?.audio_url ?? "") ? input.audio_url : null;
}

function pronunciation(out, input) {
  const source = audioSource(input);
  const player = source && h("audio", { controls: true, src: source, class: "player" });
  const pct = (x) => `${(x * 100).toFixed(0)} %`;
  const words = out.words.map((w) => h("span", {
    class: `word verdict-${w.verdict}`, "data-verdict": w.verdict,
    title: `${w.verdict}, ${w.score.toFixed(0)}/100: expected ${ipa(w.expected_phones)}, ` +
      `heard ${ipa(w.recognized_phones)}`,
    // Clicking a word plays it, where the alignment gave it times.
    onclick: () => {
      if (player && w.start !== null && w.start !== undefined) {
        player.currentTime = w.start;
        player.play();
      }
    },
  }, w.word));
  return h("div", { class: "pronunciation" },
    h("p", { class: "scores" }, h("strong", { class: "score" }, `${out.score.toFixed(0)}/100`),
      ` accuracy ${pct(out.accuracy)} · phone error rate ${out.per.toFixed(2)}`,
      out.confidence !== null && out.confidence !== undefined
        ? ` · confidence ${pct(out.confidence)}` : ""),
    player ?? h("p", { class: "note" }, "No player: the audio was not submitted from this tab."),
    h("p", { class: "sentence" }, words.flatMap((w) => [w, " "])),
    h("p", { class: "legend" }, ["correct", "mispronounced", "missing"].map((v) =>
      h("span", { class: `word verdict-${v}` }, v))),
    table(["Word", "Verdict", "Score", "Expected", "Heard"], out.words.map((w) => [w.word,
      w.verdict, w.score.toFixed(0), ipa(w.expected_phones), ipa(w.recognized_phones)])),
    out.warnings.length ? h("ul", { class: "warnings" }, out.warnings.map((w) => h("li", {}, w)))
      : null);
}

function dental(out) {
  const overlays = Object.entries(out.debug_images ?? {}).map(([name, value]) =>
    h("figure", {}, h("img", {
      class: "overlay", alt: name,
      src: /^https?:\/\//.test(value) ? value : `data:image/jpeg;base64,${value}`,
    }), h("figcaption", {}, name)));
  const csv = out.csv_data
    ? h("a", { class: "button csv", download: "findings.csv",
      href: `data:text/csv;charset=utf-8,${encodeURIComponent(out.csv_data)}` }, "Download CSV")
    : out.csv_url && h("a", { class: "button csv", href: out.csv_url }, "Download CSV");
  return h("div", { class: "dental" },
    out.warnings.length ? h("ul", { class: "warnings" }, out.warnings.map((w) => h("li", {}, w)))
      : null,
    overlays.length ? h("div", { class: "overlays" }, overlays)
      : h("p", { class: "note" }, "No overlays: submit with debug on to get them."),
    h("p", {}, `${out.num_findings} findings `, csv),
    table(["Tooth (FDI)", "Finding", "Score"], out.findings.map((f) => [f.fdi, f.finding,
      f.score.toFixed(3)]), { class: "findings" }));
}

function pd(out, input) {
  const signals = signalsOf(input);
  const plots = out.results.map((r) => {
    const signal = signals?.[r.sample_index];
    return h("figure", {}, signal ? plotSignal(signal, r.regions) : null,
      h("figcaption", {}, `signal ${r.sample_index}: ${r.regions.length} regions`));
  });
  return h("div", { class: "pd" },
    h("p", {}, `${out.total_samples_processed} signals, ${out.valid_samples_found} with a ` +
      "partial-discharge peak"),
    signals ? null : h("p", { class: "note" }, "No plot: the signals were not submitted from " +
      "this tab, or came by URL."),
    plots,
    table(["Signal", "Start", "End", "Duration"], out.results.flatMap((r) => r.regions.map(
      (g) => [r.sample_index, g.start, g.end, g.duration])), { class: "regions" }));
}

const RENDERERS = { g2p, pronunciation, dental, pd };

export function renderOutput(family, output, input) {
  const render = RENDERERS[family];
  if (!render) return h("div", { class: "output" }, h("pre", { class: "json" },
    JSON.stringify(output, null, 2)));
  try {
    return h("div", { class: "output" }, render(output, input));
  } catch (error) {
    // An output of another shape than the family's schema: still show it.
    return h("div", { class: "output" }, h("p", { class: "error" },
      `cannot draw this ${family} output (${error.message})`), rawJson(output));
  }
}
