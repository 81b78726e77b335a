// The campaign list: one page of campaigns from the API's cursor, each with
// its counts from its own stats request (all of them at once), sorted on the
// page as the column buttons say. Rows are updated in place, keyed by
// campaign, so that a refresh keeps the keyboard focus where it was.

import * as api from './api.js';
import { showNumber, showText } from './format.js';
import { PAGE_SIZE, getState, listPage, setListNext } from './state.js';

const NUMERIC = new Set(['last_hour', 'last_day', 'total', 'unique_users']);
const FIELDS = ['name', 'status', 'last_hour', 'last_day', 'total', 'unique_users'];

const $ = (sel) => document.querySelector(sel);

// rows is the page on show: {campaign, stats} or {campaign, error}, in the
// API's order; sorting reorders a copy.
let rows = [];
let more = false;

// refresh reads the page on show and the stats of its campaigns, then
// draws it. An error of the list itself (the API's message for a bad
// search, say) is shown in place, under the filters, and thrown. A
// campaign whose stats fail shows dashes, with the others drawn, and the
// first such error is thrown after drawing, for the status line.
export async function refresh(signal) {
  const { name, status } = getState().list;
  const { cursor } = listPage();
  let page;
  try {
    page = await api.listCampaigns({
      name: name.trim(),
      status: status === 'all' ? '' : status,
      cursor,
      limit: PAGE_SIZE,
    }, signal);
  } catch (err) {
    if (err.name !== 'AbortError' && !api.isAuthError(err)) $('#list-error').textContent = err.message;
    throw err;
  }
  const campaigns = Array.isArray(page.campaigns) ? page.campaigns : [];
  const settled = await Promise.allSettled(campaigns.map((c) => api.getStats(c.id, signal)));
  signal.throwIfAborted();
  let failure = null;
  rows = campaigns.map((campaign, i) => {
    const s = settled[i];
    if (s.status === 'fulfilled') return { campaign, stats: s.value };
    if (!failure || api.isAuthError(s.reason) || s.reason.name === 'AbortError') failure = s.reason;
    return { campaign, error: s.reason };
  });
  if (failure && (failure.name === 'AbortError' || api.isAuthError(failure))) throw failure;
  more = Boolean(page.next_cursor);
  setListNext(page.next_cursor);
  draw();
  $('#list-error').textContent = '';
  if (failure) {
    const n = rows.filter((r) => r.error).length;
    throw new Error(`The counts of ${n} campaign${n === 1 ? '' : 's'} could not be read: ${failure.message}`);
  }
}

function value(row, field) {
  switch (field) {
    case 'name':
      return row.campaign.name;
    case 'status':
      return row.campaign.status;
    case 'unique_users':
      return row.stats?.unique_users?.total;
    default:
      return row.stats?.[field];
  }
}

function sorted() {
  const { key, dir } = getState().list.sort;
  if (!key || dir === 'none') return rows;
  const sign = dir === 'ascending' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = value(a, key);
    const y = value(b, key);
    // Rows without a value (stats that failed) go last either way.
    if (x === undefined || y === undefined) return (x === undefined) - (y === undefined);
    const c = NUMERIC.has(key) ? x - y : String(x).localeCompare(String(y), 'en', { sensitivity: 'base' });
    return c * sign;
  });
}

// draw shows rows as sorted, reusing each campaign's row.
export function draw() {
  const body = $('#campaign-table').tBodies[0];
  const old = new Map([...body.rows].map((tr) => [tr.dataset.campaignId, tr]));
  const order = sorted();
  order.forEach((row, i) => {
    const id = row.campaign.id;
    let tr = old.get(id);
    if (tr) {
      old.delete(id);
    } else {
      tr = newRow(id);
    }
    fill(tr, row);
    if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] || null);
  });
  for (const tr of old.values()) tr.remove();

  const { key, dir } = getState().list.sort;
  for (const button of document.querySelectorAll('#campaign-table th > button[data-sort]')) {
    button.parentElement.setAttribute('aria-sort', button.dataset.sort === key ? dir : 'none');
  }

  const { index } = listPage();
  $('#prev-page').disabled = index === 0;
  $('#next-page').disabled = !more;
  $('#page-number').textContent = `Page ${index + 1}`;
  const empty = $('#list-empty');
  empty.hidden = rows.length > 0;
  const { name, status } = getState().list;
  if (more) {
    empty.textContent = 'No campaign on this page matches; the next page may hold some.';
  } else if (name.trim() || status !== 'all') {
    empty.textContent = 'No campaign matches.';
  } else {
    empty.textContent = 'No campaigns yet: create one below.';
  }
}

function newRow(id) {
  const tr = document.createElement('tr');
  tr.dataset.campaignId = id;
  for (const field of FIELDS) {
    const cell = document.createElement('td');
    if (field === 'name') {
      const a = document.createElement('a');
      a.href = `#/campaigns/${encodeURIComponent(id)}`;
      cell.append(a);
    }
    cell.dataset.field = field;
    tr.append(cell);
  }
  return tr;
}

function fill(tr, row) {
  for (const cell of tr.cells) {
    const field = cell.dataset.field;
    const v = value(row, field);
    if (field === 'name') {
      if (cell.dataset.value !== v) {
        cell.dataset.value = v;
        cell.firstElementChild.textContent = v;
      }
    } else if (field === 'status') {
      showText(cell, v);
      cell.className = `status status-${v}`;
    } else {
      showNumber(cell, v);
      if (row.error) {
        cell.title = row.error.message;
      } else {
        cell.removeAttribute('title');
      }
    }
  }
}
