// The campaign page: the campaign, its counts, its series as a chart and a
// table, and its ads as a bar chart and a table. Everything one refresh
// shows is read first and drawn together, so the page never mixes two
// moments or two campaigns.

import * as api from './api.js';
import { clearChart, renderAds, renderSeries } from './chart.js';
import { showNumber, showText, utcText } from './format.js';
import { ADS_PAGE_SIZE, adsPage, getState, setAdsNext } from './state.js';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const floorTo = (ms, width) => Math.floor(ms / width) * width;
const iso = (ms) => new Date(ms).toISOString();

const $ = (sel) => document.querySelector(sel);

// current is the campaign on show, as last read, for the forms.
let current = null;

// campaignOnShow returns the campaign on show, or null before it is read.
export function campaignOnShow() {
  return current;
}

// reset empties the page before another campaign is read, so that nothing
// of the last one shows under the new one's address.
export function reset() {
  current = null;
  const view = $('#campaign-view');
  delete view.dataset.campaignId;
  $('#campaign-name').textContent = 'Campaign';
  document.title = 'Campaign · Ad impressions';
  const status = $('#campaign-status');
  delete status.dataset.value;
  status.textContent = '';
  status.className = 'status';
  $('#campaign-period').textContent = '';
  for (const el of view.querySelectorAll('[data-stat]')) showNumber(el, undefined);
  const asOf = $('#as-of');
  delete asOf.dataset.value;
  asOf.removeAttribute('datetime');
  asOf.textContent = '–';
  clearChart($('#series-chart'), $('#series-table'));
  clearChart($('#ads-chart'), $('#ads-table'));
  $('#ads-empty').hidden = true;
  $('#campaign-error').textContent = '';
  $('#action-error').textContent = '';
  $('#pause-button').disabled = true;
  $('#resume-button').disabled = true;
}

// loadSeries reads the points of the interval's span, oldest first:
// minutes of the last 24 hours (the API's default span for minutes); hours
// of the last 90 days, in two requests since one holds at most 1,500
// points; days from the campaign's start, the last 1,500 at most.
async function loadSeries(id, campaign, interval, signal) {
  if (interval === 'minute') {
    return (await api.getSeries(id, { interval }, signal)).points;
  }
  if (interval === 'hour') {
    const now = api.serverNow().getTime();
    const recent = await api.getSeries(id, { interval, from: iso(floorTo(now, HOUR) - 1079 * HOUR) }, signal);
    // The server's own now (recent.to) decides the oldest hour it keeps:
    // the current one and the 2,159 before it.
    const oldest = floorTo(Date.parse(recent.to), HOUR) - 2159 * HOUR;
    if (oldest >= Date.parse(recent.from)) return recent.points;
    let older;
    try {
      older = await api.getSeries(id, { interval, from: iso(oldest), to: recent.from }, signal);
    } catch (err) {
      // The hour turned between the two requests, and the oldest hour
      // asked for is no longer kept: ask from the next one.
      if (!(err instanceof api.ApiError) || err.status !== 400) throw err;
      older = await api.getSeries(id, { interval, from: iso(oldest + HOUR), to: recent.from }, signal);
    }
    const first = recent.points.length ? recent.points[0].start : null;
    return [...older.points.filter((p) => first === null || Date.parse(p.start) < Date.parse(first)), ...recent.points];
  }
  const c = await campaign;
  const now = api.serverNow().getTime();
  // A campaign that started less than a day ago, or is still to start,
  // shows yesterday and today.
  const start = Date.parse(c.start_time);
  const from = Math.max(Math.min(Number.isNaN(start) ? now : start, now - DAY), floorTo(now, DAY) - 1498 * DAY);
  return (await api.getSeries(id, { interval, from: iso(from) }, signal)).points;
}

// refresh reads campaign id and draws it. An error is shown in place, and
// thrown for the status line.
export async function refresh(id, signal) {
  const interval = getState().campaign.interval;
  const { cursor } = adsPage();
  try {
    const campaign = api.getCampaign(id, signal);
    const [c, stats, points, ads] = await Promise.all([
      campaign,
      api.getStats(id, signal),
      loadSeries(id, campaign, interval, signal),
      api.getAds(id, { cursor, limit: ADS_PAGE_SIZE }, signal),
    ]);
    // A refresh abandoned for another campaign or interval draws nothing.
    signal.throwIfAborted();
    draw(c, stats, points, interval, ads);
  } catch (err) {
    if (err.name !== 'AbortError' && !api.isAuthError(err)) {
      $('#campaign-error').textContent = err.message;
      if (err.status === 404) $('#campaign-name').textContent = 'No such campaign';
    }
    throw err;
  }
}

const INTERVAL_TITLES = {
  minute: 'Impressions per minute, last 24 hours (UTC)',
  hour: 'Impressions per hour, last 90 days (UTC)',
  day: 'Impressions per day, since the start (UTC)',
};

// stat reads a dotted path such as "unique_users.total" from the stats.
function stat(stats, path) {
  return path.split('.').reduce((v, k) => (v && typeof v === 'object' ? v[k] : undefined), stats);
}

function draw(campaign, stats, points, interval, ads) {
  current = campaign;
  const view = $('#campaign-view');
  view.dataset.campaignId = campaign.id;
  const name = $('#campaign-name');
  if (name.textContent !== campaign.name) name.textContent = campaign.name;
  document.title = `${campaign.name} · Ad impressions`;
  const status = $('#campaign-status');
  showText(status, campaign.status);
  status.className = `status status-${campaign.status}`;
  const now = api.serverNow().getTime();
  const started = Date.parse(campaign.start_time) <= now ? 'Started' : 'Starts';
  const end = campaign.end_time
    ? `${Date.parse(campaign.end_time) <= now ? 'ended' : 'ends'} ${utcText(campaign.end_time)}`
    : 'no end set';
  $('#campaign-period').textContent = `${started} ${utcText(campaign.start_time)}; ${end}.`;

  for (const el of view.querySelectorAll('[data-stat]')) showNumber(el, stat(stats, el.dataset.stat));
  const asOf = $('#as-of');
  if (typeof stats.as_of === 'string') {
    asOf.dataset.value = stats.as_of;
    asOf.setAttribute('datetime', stats.as_of);
    asOf.textContent = utcText(stats.as_of);
  } else {
    delete asOf.dataset.value;
    asOf.removeAttribute('datetime');
    asOf.textContent = 'not reported yet';
  }

  const pause = $('#pause-button');
  const resume = $('#resume-button');
  if (!pause.dataset.busy) pause.disabled = campaign.paused;
  if (!resume.dataset.busy) resume.disabled = !campaign.paused;

  $('#series-title').textContent = INTERVAL_TITLES[interval];
  renderSeries($('#series-chart'), $('#series-table'), points, interval);

  const list = Array.isArray(ads.ads) ? ads.ads : [];
  setAdsNext(ads.next_cursor);
  renderAds($('#ads-chart'), $('#ads-table'), list);
  const { index } = adsPage();
  $('#ads-empty').hidden = list.length > 0;
  $('#ads-next').disabled = !ads.next_cursor;
  $('#ads-prev').disabled = index === 0;
  $('#ads-page').textContent = `Ads page ${index + 1}`;
  $('#campaign-error').textContent = '';
}

// showInterval marks the chosen interval's switch as pressed.
export function showInterval() {
  const chosen = getState().campaign.interval;
  for (const b of document.querySelectorAll('button[data-interval]')) {
    b.setAttribute('aria-pressed', String(b.dataset.interval === chosen));
  }
}
