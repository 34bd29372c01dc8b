// Charts drawn as SVG by the console itself (no library): vertical bars, stacked when a bar
// has several series, with axis labels and a <title> per bar for the exact figure. Every
// chart is an image with an accessible name; the view shows the same figures in a table.

const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A round maximum for the axis: 1, 2 or 5 × 10ⁿ at or above `value`. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/** `1.2k`, `3.4M`. */
export function compact(value) {
  if (value === null || value === undefined) return '–';
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toFixed(abs >= 1e7 ? 0 : 1)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(abs >= 1e4 ? 0 : 1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

/**
 * A bar chart. `labels`: one per bar; `series`: `[{name, values, className}]` stacked in
 * that order; `label`: the chart's accessible name; `unit` follows figures in titles.
 */
export function barChart({ labels, series, label, unit = '', height = 200 }) {
  // One width whatever the number of bars, so its text keeps one size when scaled.
  const width = 420;
  const left = 44;
  const bottom = 28;
  const top = 10;
  const plot = height - bottom - top;
  const totals = labels.map((_, index) => series.reduce((sum, item) => sum + (item.values[index] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label, preserveAspectRatio: 'xMinYMin meet' });
  svg.append(el('title', {}, label));
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot - fraction * plot;
    svg.append(el('line', { x1: left, x2: width - 8, y1: y, y2: y, class: 'chart-grid' }));
    svg.append(el('text', { x: left - 6, y: y + 4, class: 'chart-axis', 'text-anchor': 'end' }, compact(max * fraction)));
  }
  const step = (width - left - 8) / Math.max(1, labels.length);
  const barWidth = Math.max(4, Math.min(28, step * 0.7));
  labels.forEach((name, index) => {
    const x = left + index * step + (step - barWidth) / 2;
    let base = top + plot;
    for (const item of series) {
      const value = item.values[index] || 0;
      if (value <= 0) continue;
      const barHeight = (value / max) * plot;
      base -= barHeight;
      const bar = el('rect', { x, y: base, width: barWidth, height: Math.max(1, barHeight), class: `chart-bar ${item.className ?? ''}`, 'data-value': value });
      bar.append(el('title', {}, `${name} · ${item.name}: ${value.toLocaleString()}${unit}`));
      svg.append(bar);
    }
    // Every label when they fit, else every few (the last one always).
    const every = Math.ceil(labels.length / Math.max(1, Math.floor((width - left) / 56)));
    if (index % every === 0) {
      svg.append(el('text', { x: x + barWidth / 2, y: height - 10, class: 'chart-axis', 'text-anchor': 'middle' }, shortLabel(name)));
    }
  });
  return svg;
}

/** `2026-11-24` → `11-24`; other labels cut to 10 characters. */
function shortLabel(text) {
  if (/^\d{4}-\d\d-\d\d$/.test(text)) return text.slice(5);
  return text.length > 10 ? `${text.slice(0, 9)}…` : text;
}

/** A legend for the series of a chart. */
export function legend(series) {
  const list = document.createElement('ul');
  list.className = 'chart-legend';
  for (const item of series) {
    const entry = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch ${item.className ?? ''}`;
    swatch.setAttribute('aria-hidden', 'true');
    entry.append(swatch, item.name);
    list.append(entry);
  }
  return list;
}
