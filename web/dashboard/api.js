// Every call the dashboard makes to the API, and the only module that
// fetches. It sends the admin key as a Bearer token, turns an answer that
// is not 2xx into an ApiError carrying the status, the API's code and its
// `error` message as written, and on 401 or 403 asks the state to forget
// the key, which brings the prompt back.
//
// URLs are relative to the page (api/v1/...), so the dashboard works at
// /dashboard and under an API Gateway stage prefix (/Prod/dashboard) alike.

import { adminKey, keyRefused } from './state.js';

// ApiError is an answer that is not 2xx, or no answer at all (status 0).
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

// isAuthError says whether err is the API refusing the key, which the
// prompt handles instead of an error message.
export function isAuthError(err) {
  return err instanceof ApiError && (err.status === 401 || err.status === 403);
}

// clockOffset is the server's clock minus ours, in ms, from the Date header
// of the last answer. The header is whole seconds and written before the
// answer travels, so the estimate never runs ahead of the server: a start
// or end of "now" is then never in the server's future.
let clockOffset = 0;

// serverNow returns the server's time, as best known.
export function serverNow() {
  return new Date(Date.now() + clockOffset);
}

function noteClock(res) {
  const date = Date.parse(res.headers.get('Date') || '');
  if (!Number.isNaN(date)) clockOffset = date - Date.now();
}

async function call(method, path, { query, body, signal } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += `?${s}`;
  }
  const key = adminKey();
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `The service did not answer: ${err.message}`);
  }
  noteClock(res);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const message = data && typeof data.error === 'string'
      ? data.error
      : `The service answered ${res.status} ${res.statusText}`.trim();
    const err = new ApiError(res.status, data && typeof data.code === 'string' ? data.code : '', message);
    if (isAuthError(err)) keyRefused(res.status, key !== '');
    throw err;
  }
  if (data === null || typeof data !== 'object') {
    throw new ApiError(res.status, 'malformed', `The service answered ${res.status} without JSON`);
  }
  return data;
}

const campaignPath = (id) => `api/v1/campaigns/${encodeURIComponent(id)}`;

// listCampaigns reads one page of campaigns: {campaigns, next_cursor}.
// name searches by name, status filters; empty ones are left out.
export function listCampaigns({ name, status, cursor, limit }, signal) {
  return call('GET', 'api/v1/campaigns', { query: { name, status, cursor, limit }, signal });
}

// getCampaign reads one campaign.
export function getCampaign(id, signal) {
  return call('GET', campaignPath(id), { signal });
}

// getStats reads a campaign's counts, unique users and frequency.
export function getStats(id, signal) {
  return call('GET', `${campaignPath(id)}/stats`, { signal });
}

// getSeries reads a campaign's counts over time; from and to may be left
// out for the API's defaults.
export function getSeries(id, { interval, from, to }, signal) {
  return call('GET', `${campaignPath(id)}/timeseries`, { query: { interval, from, to }, signal });
}

// getAds reads one page of a campaign's counts per ad.
export function getAds(id, { cursor, limit }, signal) {
  return call('GET', `${campaignPath(id)}/ads`, { query: { cursor, limit }, signal });
}

// createCampaign registers a campaign: {name, start_time, end_time?}.
export function createCampaign(fields) {
  return call('POST', 'api/v1/campaigns', { body: fields });
}

// updateCampaign changes a campaign: {name}, {paused} or {end_time}.
export function updateCampaign(id, patch) {
  return call('PATCH', campaignPath(id), { body: patch });
}
