// The charts, drawn by uPlot, and the tables that give each chart's numbers
// as text. A chart is kept between refreshes and given new data, so that a
// live page does not rebuild its canvas every few seconds; it is built anew
// only when its shape changes (another interval, a second series) or the
// colour scheme does.

import uPlot from './vendor/uPlot.esm.js';
import { formatNumber, showNumber, utcText } from './format.js';

// charts holds each container's chart and the last data it drew.
const charts = new Map();

// adIds is the ad ids of each ads chart, read by its axis and legend.
const adIds = new Map();
const currentIds = (container) => adIds.get(container) || [];

// shown holds what each table shows, as JSON.
const shown = new WeakMap();

// INCRS are the steps the count axes may use: whole numbers only.
const INCRS = [];
for (let e = 1; e <= 1e12; e *= 10) INCRS.push(e, 2 * e, 5 * e);

// colours reads the chart colours from the style sheet, which sets them for
// light and dark schemes.
function colours(el) {
  const css = getComputedStyle(el);
  const v = (name, dflt) => css.getPropertyValue(name).trim() || dflt;
  return {
    one: v('--chart-1', '#1f5fbf'),
    oneFill: v('--chart-1-fill', 'rgba(31,95,191,0.12)'),
    two: v('--chart-2', '#b3541e'),
    axis: v('--chart-axis', '#333'),
    grid: v('--chart-grid', 'rgba(0,0,0,0.1)'),
  };
}

function size(el) {
  const width = Math.max(280, Math.floor(el.clientWidth || 600));
  return { width, height: Math.round(Math.min(320, Math.max(200, width * 0.45))) };
}

function axis(c, extra) {
  return {
    stroke: c.axis,
    grid: { stroke: c.grid, width: 1 },
    ticks: { stroke: c.grid, width: 1 },
    ...extra,
  };
}

const countAxis = (c) => axis(c, {
  incrs: INCRS,
  size: 64,
  values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? formatNumber(v) : '')),
});

const countRange = (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.1) : 1];

const countValue = (u, v) => (v == null ? '–' : formatNumber(v));

// keep builds or updates container's chart: make(colours) returns the
// uPlot options, shape says when a chart must be built anew.
function keep(container, shape, make, data) {
  const rec = charts.get(container);
  if (rec && rec.shape === shape) {
    rec.data = data;
    rec.plot.setData(data);
    return;
  }
  if (rec) forget(container);
  container.replaceChildren();
  const plot = new uPlot({ ...size(container), ...make(colours(container)) }, data, container);
  const next = { shape, make, plot, data, resize: null };
  if (typeof ResizeObserver === 'function') {
    next.resize = new ResizeObserver(() => {
      if (container.clientWidth > 0) next.plot.setSize(size(container));
    });
    next.resize.observe(container);
  }
  charts.set(container, next);
}

// forget destroys container's chart.
function forget(container) {
  const rec = charts.get(container);
  if (!rec) return;
  rec.plot.destroy();
  if (rec.resize) rec.resize.disconnect();
  charts.delete(container);
}

// A change of colour scheme rebuilds every chart with the new colours.
if (typeof matchMedia === 'function') {
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    for (const [container, rec] of [...charts]) {
      forget(container);
      keep(container, rec.shape, rec.make, rec.data);
    }
  });
}

// timeValues labels the time axis in UTC, 24-hour: hours and minutes, with
// the date under the first tick and under each midnight; days as MM-DD.
function timeValues(u, splits, axisIdx, space, incr) {
  return splits.map((ts, i) => {
    const s = new Date(ts * 1000).toISOString();
    if (incr >= 86400) return s.slice(5, 10);
    const hm = s.slice(11, 16);
    return i === 0 || hm === '00:00' ? `${hm}\n${s.slice(5, 10)}` : hm;
  });
}

const INTERVAL_WORDS = {
  minute: 'Impressions per minute, last 24 hours',
  hour: 'Impressions per hour, last 90 days',
  day: 'Impressions per day, since the start',
};

// renderSeries draws a campaign's series (the API's points, oldest first)
// as a line of counts, with unique users as a second line when the points
// carry them, and writes the points into table, newest first: rows
// tr[data-start], cells td[data-field="count|unique_users"] with the raw
// value in data-value. A point without unique_users (the API keeps reach
// only for recent hours and days) has no unique_users cell value.
export function renderSeries(container, table, points, interval) {
  const xs = points.map((p) => Date.parse(p.start) / 1000);
  const counts = points.map((p) => p.count);
  const users = points.map((p) => (typeof p.unique_users === 'number' ? p.unique_users : null));
  const withUsers = users.some((v) => v !== null);
  const data = withUsers ? [xs, counts, users] : [xs, counts];

  keep(container, `${interval}/${withUsers}`, (c) => ({
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    scales: { x: { time: true }, y: { range: countRange } },
    legend: { live: true },
    series: [
      { label: 'Time (UTC)', value: (u, ts) => (ts == null ? '–' : utcText(new Date(ts * 1000).toISOString(), interval)) },
      { label: 'Impressions', stroke: c.one, fill: c.oneFill, width: 2, value: countValue, points: { show: false } },
      ...(withUsers ? [{ label: 'Unique users', stroke: c.two, width: 2, dash: [6, 4], value: countValue, spanGaps: false, points: { show: false } }] : []),
    ],
    axes: [axis(c, { values: timeValues, space: 60 }), countAxis(c)],
  }), data);

  let max = 0;
  let sum = 0;
  for (const n of counts) {
    sum += n;
    if (n > max) max = n;
  }
  const span = points.length
    ? ` from ${utcText(points[0].start, interval)} to ${utcText(points[points.length - 1].start, interval)}`
    : '';
  container.setAttribute('aria-label', `${INTERVAL_WORDS[interval] || 'Impressions'}: ${formatNumber(points.length)} points${span}, `
    + `${formatNumber(sum)} impressions in all, at most ${formatNumber(max)} in one. The numbers are in the table below the chart.`);

  writeRows(table, points, (tr, p) => {
    tr.dataset.start = p.start;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = utcText(p.start, interval);
    const count = document.createElement('td');
    count.dataset.field = 'count';
    showNumber(count, p.count);
    const uu = document.createElement('td');
    if (typeof p.unique_users === 'number') {
      uu.dataset.field = 'unique_users';
      showNumber(uu, p.unique_users);
    } else {
      uu.textContent = '–';
      uu.title = 'Unique users are not kept for this point';
    }
    tr.append(th, count, uu);
  }, true);
}

// renderAds draws one page of ads (the API's order, most impressions
// first) as bars of their totals, and writes them into table: rows
// tr[data-ad-id], cells td[data-field="last_hour|last_day|total|filtered"]
// with the raw value in data-value.
export function renderAds(container, table, ads) {
  const ids = ads.map((a) => a.ad_id);
  const data = [ads.map((_, i) => i), ads.map((a) => a.total)];
  container.hidden = ads.length === 0;
  adIds.set(container, ids);
  if (ads.length > 0) {
    keep(container, 'ads', (c) => ({
      scales: {
        x: { time: false, range: (u) => [-0.5, Math.max(0.5, u.data[0].length - 0.5)] },
        y: { range: countRange },
      },
      legend: { live: true },
      cursor: { points: { show: false } },
      series: [
        { label: 'Ad', value: (u, i) => (i == null ? '–' : (currentIds(container)[Math.round(i)] ?? '–')) },
        {
          label: 'Total impressions',
          stroke: c.one,
          fill: c.one,
          width: 1,
          value: countValue,
          paths: uPlot.paths.bars({ size: [0.6, 64] }),
          points: { show: false },
        },
      ],
      axes: [
        axis(c, {
          incrs: [1, 2, 5, 10, 20, 50],
          space: 96,
          grid: { show: false },
          values: (u, splits) => splits.map((i) => {
            const id = Number.isInteger(i) ? currentIds(container)[i] : undefined;
            return id === undefined ? '' : (id.length > 12 ? `${id.slice(0, 11)}…` : id);
          }),
        }),
        countAxis(c),
      ],
    }), data);
  }
  container.setAttribute('aria-label', ads.length
    ? `Total impressions per ad, for ${ads.length} ads, most first: ${ads.map((a) => `${a.ad_id} ${formatNumber(a.total)}`).join(', ')}.`
    : 'No ads have impressions yet.');

  writeRows(table, ads, (tr, a) => {
    tr.dataset.adId = a.ad_id;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = a.ad_id;
    tr.append(th);
    for (const field of ['last_hour', 'last_day', 'total', 'filtered']) {
      const td = document.createElement('td');
      td.dataset.field = field;
      showNumber(td, a[field]);
      tr.append(td);
    }
  }, false);
}

// clearChart forgets container's chart, for a page about another campaign.
export function clearChart(container, table) {
  forget(container);
  adIds.delete(container);
  container.replaceChildren();
  container.removeAttribute('aria-label');
  table.tBodies[0].replaceChildren();
  shown.delete(table);
}

// writeRows replaces table's body with a row per item, unless the items are
// the ones already shown: a refresh that changes nothing touches nothing.
function writeRows(table, items, fill, newestFirst) {
  const body = table.tBodies[0];
  const signature = JSON.stringify(items);
  if (shown.get(table) === signature) return;
  const frag = document.createDocumentFragment();
  const ordered = newestFirst ? [...items].reverse() : items;
  for (const item of ordered) {
    const tr = document.createElement('tr');
    fill(tr, item);
    frag.append(tr);
  }
  body.replaceChildren(frag);
  shown.set(table, signature);
}
