// PD signals from a submitted input (JSON arrays, or a CSV / .npy file in base64 or a
// data: URI, read as the endpoint reads them) and their plot with the found regions.

import { h } from "./dom.js";

const NPY_MAGIC = "\x93NUMPY";
const WIDTH = 960;
const HEIGHT = 170;
const PAD = 14;

function bytesOf(base64) {
  const text = atob(base64.replace(/\s/g, ""));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

// One signal per line; a header line is skipped; a single column is one signal.
function fromCsv(text) {
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/).map((l) => l.trim()).filter(Boolean)
    .map((l) => l.split(/[,;\s]+/));
  if (rows.length && Number.isNaN(Number(rows[0][0]))) rows.shift();
  const numbers = rows.map((r) => r.map(Number));
  return numbers[0]?.length === 1 ? [numbers.map((r) => r[0])] : numbers;
}

const NPY_READERS = {
  f4: (v, o, le) => v.getFloat32(o, le), f8: (v, o, le) => v.getFloat64(o, le),
  i1: (v, o) => v.getInt8(o), i2: (v, o, le) => v.getInt16(o, le),
  i4: (v, o, le) => v.getInt32(o, le), i8: (v, o, le) => Number(v.getBigInt64(o, le)),
  u1: (v, o) => v.getUint8(o), u2: (v, o, le) => v.getUint16(o, le),
  u4: (v, o, le) => v.getUint32(o, le), u8: (v, o, le) => Number(v.getBigUint64(o, le)),
};

function fromNpy(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version1 = bytes[6] === 1;
  const start = version1 ? 10 : 12;
  const headerLength = version1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([<>|=])(\w\d)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1].split(",").filter((s) => s.trim())
    .map(Number);
  const read = descr && NPY_READERS[descr[2]];
  if (!read || !shape?.length || shape.length > 2) return null;
  const little = descr[1] !== ">";
  const size = Number(descr[2].slice(1));
  const fortran = /'fortran_order':\s*True/.test(header);
  const [rows, cols] = shape.length === 1 ? [1, shape[0]] : shape;
  const at = (r, c) => start + headerLength + size * (fortran ? c * rows + r : r * cols + c);
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: cols }, (_, c) => read(view, at(r, c), little)));
}

/** The input's signals as rows of numbers, or null where they cannot be had here. */
export function signalsOf(input) {
  if (Array.isArray(input?.signals)) {
    return Array.isArray(input.signals[0]) ? input.signals : [input.signals];
  }
  const encoded = input?.file_base64
    ?? (input?.file_url?.startsWith("data:") ? input.file_url.split(",", 2)[1] : null);
  if (!encoded) return null;
  try {
    const bytes = bytesOf(encoded);
    const isNpy = input.format === "npy" || (input.format !== "csv"
      && String.fromCharCode(...bytes.subarray(0, 6)) === NPY_MAGIC);
    return isNpy ? fromNpy(bytes) : fromCsv(new TextDecoder().decode(bytes));
  } catch {
    return null; // not decodable here; the server's answer still shows
  }
}

/** A canvas: the signal's min-max envelope per pixel column, the regions shaded. */
export function plotSignal(signal, regions) {
  const canvas = h("canvas", { class: "signal", width: WIDTH, height: HEIGHT,
    "data-regions": regions.length });
  const ctx = canvas.getContext("2d");
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of signal) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const span = hi - lo || 1;
  const x = (i) => (i / signal.length) * WIDTH;
  const y = (v) => HEIGHT - PAD - ((v - lo) / span) * (HEIGHT - 2 * PAD);
  ctx.fillStyle = "rgba(220, 50, 47, 0.25)";
  for (const r of regions) ctx.fillRect(x(r.start), 0, Math.max(1, x(r.end) - x(r.start)), HEIGHT);
  ctx.strokeStyle = "#1f5f99";
  ctx.beginPath();
  for (let px = 0; px < WIDTH; px += 1) {
    const from = Math.floor((px / WIDTH) * signal.length);
    const to = Math.max(from + 1, Math.floor(((px + 1) / WIDTH) * signal.length));
    let min = Infinity;
    let max = -Infinity;
    for (let i = from; i < to && i < signal.length; i += 1) {
      min = Math.min(min, signal[i]);
      max = Math.max(max, signal[i]);
    }
    if (min === Infinity) continue;
    ctx.lineTo(px + 0.5, y(max)); // the first lineTo of a path only moves
    ctx.lineTo(px + 0.5, y(min) + 1);
  }
  ctx.stroke();
  ctx.fillStyle = "#555";
  ctx.font = "11px sans-serif";
  ctx.fillText(`${hi.toPrecision(3)}`, 2, PAD - 3);
  ctx.fillText(`${lo.toPrecision(3)}`, 2, HEIGHT - 2);
  ctx.fillText(`${signal.length} samples`, WIDTH - 80, HEIGHT - 2);
  return canvas;
}
