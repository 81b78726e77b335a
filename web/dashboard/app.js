// The dashboard's entry point: routing by the URL's hash (#/ is the list,
// #/campaigns/<id> a campaign), the live refresh, and the wiring of the
// views and forms.
//
// Live refresh: every 5 seconds, or ?refresh=<seconds> (1 to 300) on the
// page's URL. A refresh reads everything its view shows and draws it at
// once; the next is set only when it is done, so that a slow API never
// stacks requests. It stops while the tab is hidden (the one in flight is
// abandoned) and runs at once when the tab is shown again. After each
// refresh that completes, body[data-refreshes] goes up by one and the
// status line says when; after one that fails, it says why.

import { isAuthError } from './api.js';
import * as campaign from './campaign.js';
import { clockTime } from './format.js';
import { wireActions, wireCreateForm, wireKeyForm } from './forms.js';
import * as list from './list.js';
import {
  adsBack, adsForward, clearTimer, cycleSort, getState, listBack, listForward,
  onKeyRefused, setListQuery, setRefreshSeconds, setSeriesInterval, setTimer, setView,
} from './state.js';

const $ = (sel) => document.querySelector(sel);
const statusLine = $('#status-line');

// inflight aborts the refresh under way.
let inflight = null;
// prompting is true while the key prompt is up: nothing refreshes then.
let prompting = false;

// route reads the view from the hash.
function route() {
  const m = /^#\/campaigns\/([^/?#]+)$/.exec(location.hash);
  if (m) {
    let id;
    try {
      id = decodeURIComponent(m[1]);
    } catch {
      id = m[1];
    }
    return { name: 'campaign', id };
  }
  return { name: 'list' };
}

// show makes view the one on screen.
function show(view) {
  $('#key-view').hidden = !prompting;
  $('#list-view').hidden = prompting || view.name !== 'list';
  $('#campaign-view').hidden = prompting || view.name !== 'campaign';
  if (view.name === 'list') document.title = 'Campaigns · Ad impressions';
}

function stop() {
  clearTimer();
  if (inflight) inflight.abort();
  inflight = null;
}

function schedule() {
  if (!document.hidden && !prompting) setTimer(setTimeout(refresh, getState().refreshMs));
}

// refresh reads and draws the view on show, now.
async function refresh() {
  stop();
  if (document.hidden || prompting) return;
  const ctl = new AbortController();
  inflight = ctl;
  const view = getState().view;
  try {
    if (view.name === 'campaign') {
      await campaign.refresh(view.id, ctl.signal);
    } else {
      await list.refresh(ctl.signal);
    }
    if (ctl.signal.aborted) return;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    statusLine.textContent = `Updated ${clockTime(new Date())}`;
  } catch (err) {
    if (ctl.signal.aborted || err.name === 'AbortError' || isAuthError(err)) return;
    statusLine.textContent = err.message;
  } finally {
    if (inflight === ctl) {
      inflight = null;
      schedule();
    }
  }
}

// navigate follows the hash to its view.
function navigate() {
  const view = route();
  const before = getState().view;
  if (view.name === 'campaign' && (before.name !== 'campaign' || before.id !== view.id)) campaign.reset();
  setView(view);
  show(view);
  refresh();
}

// prompt brings the key prompt up; status is the API's refusal (401 or
// 403), and sent says whether a key had been given, since a first visit
// to a server that wants a key is no refusal.
function prompt(status, sent) {
  stop();
  prompting = true;
  show(getState().view);
  $('#key-message').textContent = sent ? `The key was refused (${status})` : '';
  statusLine.textContent = 'An admin key is needed';
  $('#admin-key').focus();
}

function wire() {
  onKeyRefused((status, sent) => {
    if (!prompting || sent) prompt(status, sent);
  });
  wireKeyForm(() => {
    prompting = false;
    show(getState().view);
    refresh();
  });
  wireCreateForm(() => {
    setListQuery({});
    refresh();
  });
  wireActions(() => refresh());

  let typing = 0;
  $('#search').addEventListener('input', (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      setListQuery({ name: e.target.value });
      refresh();
    }, 300);
  });
  $('#search').closest('form').addEventListener('submit', (e) => {
    e.preventDefault();
    clearTimeout(typing);
    setListQuery({ name: $('#search').value });
    refresh();
  });
  $('#status-filter').addEventListener('change', (e) => {
    setListQuery({ status: e.target.value });
    refresh();
  });
  for (const b of document.querySelectorAll('#campaign-table th > button[data-sort]')) {
    b.addEventListener('click', () => {
      cycleSort(b.dataset.sort, b.dataset.sort !== 'name' && b.dataset.sort !== 'status');
      list.draw();
    });
  }
  $('#prev-page').addEventListener('click', () => listBack() && refresh());
  $('#next-page').addEventListener('click', () => listForward() && refresh());

  for (const b of document.querySelectorAll('button[data-interval]')) {
    b.addEventListener('click', () => {
      setSeriesInterval(b.dataset.interval);
      campaign.showInterval();
      refresh();
    });
  }
  $('#ads-prev').addEventListener('click', () => adsBack() && refresh());
  $('#ads-next').addEventListener('click', () => adsForward() && refresh());

  window.addEventListener('hashchange', navigate);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      stop();
    } else {
      refresh();
    }
  });
}

setRefreshSeconds(new URLSearchParams(location.search).get('refresh'));
wire();
campaign.showInterval();
navigate();
