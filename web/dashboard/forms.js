// The forms: the admin key prompt, creating a campaign, and pausing,
// resuming, renaming and ending one. The API is the one judge of what is
// valid, so the forms do not validate (novalidate, no required fields) and
// show the API's error message in place, as written.

import * as api from './api.js';
import { campaignOnShow } from './campaign.js';
import { fromInput, rfc3339 } from './format.js';
import { setAdminKey } from './state.js';

const $ = (sel) => document.querySelector(sel);

// busy disables control while its request is in flight, so that a click
// is sent once, and marks it so that a refresh does not enable it early.
async function busy(control, work) {
  control.disabled = true;
  control.dataset.busy = 'true';
  control.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    delete control.dataset.busy;
    control.removeAttribute('aria-busy');
    control.disabled = false;
  }
}

// failed shows err in place, in the alert element el. A refused key is
// the prompt's to say.
function failed(el, err) {
  if (!api.isAuthError(err)) el.textContent = err.message;
}

// wireKeyForm calls onKey once a key is given.
export function wireKeyForm(onKey) {
  $('#key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $('#admin-key');
    const key = input.value.trim();
    if (!key) {
      $('#key-message').textContent = 'Enter the admin key.';
      input.focus();
      return;
    }
    setAdminKey(key);
    input.value = '';
    $('#key-message').textContent = '';
    onKey();
  });
}

// wireCreateForm creates a campaign from the form; the start defaults to
// the server's now, and the times are read as UTC. onCreated(campaign)
// follows a success.
export function wireCreateForm(onCreated) {
  const form = $('#create-form');
  const error = $('#create-error');
  const result = $('#create-result');
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    result.replaceChildren();
    const fields = {
      name: $('#create-name').value,
      start_time: fromInput($('#create-start').value) || rfc3339(api.serverNow()),
    };
    const end = fromInput($('#create-end').value);
    if (end) fields.end_time = end;
    try {
      const campaign = await busy(form.querySelector('button[type="submit"]'), () => api.createCampaign(fields));
      form.reset();
      const link = document.createElement('a');
      link.href = `#/campaigns/${encodeURIComponent(campaign.id)}`;
      link.textContent = campaign.name;
      result.append('Created ', link, '.');
      onCreated(campaign);
    } catch (err) {
      failed(error, err);
    }
  });
}

// wireActions changes the campaign on show; onChanged follows a success.
export function wireActions(onChanged) {
  const error = $('#action-error');
  const act = async (control, patch) => {
    const campaign = campaignOnShow();
    if (!campaign) return false;
    error.textContent = '';
    try {
      await busy(control, () => api.updateCampaign(campaign.id, patch()));
      onChanged();
      return true;
    } catch (err) {
      failed(error, err);
      return false;
    }
  };

  const pause = $('#pause-button');
  const resume = $('#resume-button');
  pause.addEventListener('click', async () => {
    if (await act(pause, () => ({ paused: true }))) pause.disabled = true;
  });
  resume.addEventListener('click', async () => {
    if (await act(resume, () => ({ paused: false }))) resume.disabled = true;
  });

  const rename = $('#rename-form');
  rename.addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('#rename-name');
    if (await act(rename.querySelector('button[type="submit"]'), () => ({ name: input.value }))) input.value = '';
  });

  // An end left empty removes the end (end_time null), as the API reads it.
  const end = $('#end-form');
  end.addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('#end-time');
    if (await act(end.querySelector('button[type="submit"]'), () => ({ end_time: fromInput(input.value) || null }))) input.value = '';
  });
  const now = $('#end-now');
  now.addEventListener('click', () => act(now, () => ({ end_time: rfc3339(api.serverNow()) })));
}
