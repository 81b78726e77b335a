// The dashboard's state, in one place: the admin key, the current view, the
// list's query, sort and cursor stack, the campaign page's interval and ads
// cursor stack, and the refresh timer. Modules read and change it through
// these functions, so that what the page shows always follows from here.

// KEY_STORAGE is where the admin key lives: sessionStorage only, so that it
// is forgotten with the tab and never sent anywhere but the Authorization
// header (never in a URL or a cookie).
const KEY_STORAGE = 'adcount.adminKey';

// PAGE_SIZE is the list's page size. Each row costs a stats request per
// refresh, so a page is kept short.
export const PAGE_SIZE = 20;

// ADS_PAGE_SIZE is how many ads the campaign page shows at once.
export const ADS_PAGE_SIZE = 20;

// DEFAULT_REFRESH_SECONDS applies unless ?refresh=<seconds> (1 to 300) says
// otherwise.
export const DEFAULT_REFRESH_SECONDS = 5;

export const INTERVALS = ['minute', 'hour', 'day'];

const state = {
  view: { name: 'list' },
  refreshMs: DEFAULT_REFRESH_SECONDS * 1000,
  timer: 0,
  list: {
    name: '',
    status: 'all',
    sort: { key: '', dir: 'none' },
    // cursors[i] is the cursor that reads page i; page 0 has none.
    cursors: [null],
    nextCursor: null,
  },
  campaign: {
    interval: 'minute',
    adsCursors: [null],
    adsNext: null,
  },
};

const keyListeners = [];

// getState returns the state; callers change it only through the functions
// below.
export function getState() {
  return state;
}

// memoryKey holds the key only when the browser refuses sessionStorage (a
// privacy mode); it then lasts until the page is reloaded.
let memoryKey = '';

// adminKey returns the admin key, or '' when none was given.
export function adminKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || memoryKey;
  } catch {
    return memoryKey;
  }
}

// setAdminKey keeps key for this tab.
export function setAdminKey(key) {
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    memoryKey = key;
  }
}

// keyRefused forgets the key and tells the listeners (the prompt) why: the
// API answered status (401 or 403); sent says whether a key was sent at
// all, since a first visit without a key is no refusal.
export function keyRefused(status, sent) {
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // nothing stored
  }
  memoryKey = '';
  for (const fn of keyListeners) fn(status, sent);
}

// onKeyRefused registers fn(status, sent) for keyRefused.
export function onKeyRefused(fn) {
  keyListeners.push(fn);
}

// setRefreshSeconds sets the refresh period from the page's ?refresh=
// value; anything but a number of seconds from 1 to 300 keeps the default.
export function setRefreshSeconds(text) {
  const s = Number(text);
  if (text !== null && text !== '' && Number.isFinite(s) && s >= 1 && s <= 300) {
    state.refreshMs = s * 1000;
  }
  return state.refreshMs / 1000;
}

// setView switches to the list ({name: 'list'}) or a campaign ({name:
// 'campaign', id}). A new campaign starts on the first page of its ads.
export function setView(view) {
  if (view.name === 'campaign' && (state.view.name !== 'campaign' || state.view.id !== view.id)) {
    state.campaign.adsCursors = [null];
    state.campaign.adsNext = null;
  }
  state.view = view;
}

// setListQuery changes the search text or the status filter; either starts
// the list again at its first page.
export function setListQuery({ name = state.list.name, status = state.list.status }) {
  state.list.name = name;
  state.list.status = status;
  state.list.cursors = [null];
  state.list.nextCursor = null;
}

// listPage returns the index and cursor of the list page on show.
export function listPage() {
  const c = state.list.cursors;
  return { index: c.length - 1, cursor: c[c.length - 1] };
}

// setListNext records the next_cursor of the page on show.
export function setListNext(cursor) {
  state.list.nextCursor = cursor || null;
}

// listForward moves to the next page, if there is one.
export function listForward() {
  if (!state.list.nextCursor) return false;
  state.list.cursors.push(state.list.nextCursor);
  state.list.nextCursor = null;
  return true;
}

// listBack moves to the previous page, if there is one.
export function listBack() {
  if (state.list.cursors.length < 2) return false;
  state.list.cursors.pop();
  state.list.nextCursor = null;
  return true;
}

// cycleSort moves key's sort on: a column's first click sorts names and
// statuses A to Z and numbers largest first, the next reverses it.
export function cycleSort(key, numeric) {
  const s = state.list.sort;
  if (s.key === key) {
    s.dir = s.dir === 'ascending' ? 'descending' : 'ascending';
  } else {
    s.key = key;
    s.dir = numeric ? 'descending' : 'ascending';
  }
}

// setSeriesInterval chooses the campaign chart's interval.
export function setSeriesInterval(interval) {
  if (INTERVALS.includes(interval)) state.campaign.interval = interval;
}

// adsPage returns the index and cursor of the ads page on show.
export function adsPage() {
  const c = state.campaign.adsCursors;
  return { index: c.length - 1, cursor: c[c.length - 1] };
}

// setAdsNext records the next_cursor of the ads page on show.
export function setAdsNext(cursor) {
  state.campaign.adsNext = cursor || null;
}

// adsForward moves to the next page of ads, if there is one.
export function adsForward() {
  if (!state.campaign.adsNext) return false;
  state.campaign.adsCursors.push(state.campaign.adsNext);
  state.campaign.adsNext = null;
  return true;
}

// adsBack moves to the previous page of ads, if there is one.
export function adsBack() {
  if (state.campaign.adsCursors.length < 2) return false;
  state.campaign.adsCursors.pop();
  state.campaign.adsNext = null;
  return true;
}

// setTimer keeps the handle of the pending refresh, clearing any other.
export function setTimer(handle) {
  clearTimeout(state.timer);
  state.timer = handle;
}

// clearTimer cancels the pending refresh.
export function clearTimer() {
  clearTimeout(state.timer);
  state.timer = 0;
}
