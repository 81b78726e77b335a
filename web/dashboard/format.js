// How the dashboard writes numbers and times. A number on the page is the
// API's own: the element's data-value holds it as the API sent it, and
// only its text is formatted, with thousands separators.

const integer = new Intl.NumberFormat('en-US');
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

// formatNumber writes an integer with separators and a frequency (a number
// with two decimals at most) as it is.
export function formatNumber(v) {
  return Number.isInteger(v) ? integer.format(v) : decimal.format(v);
}

// showNumber puts the API's value v into el: raw in data-value, formatted
// in the text. A missing value clears both, so that nothing stale shows.
export function showNumber(el, v) {
  if (typeof v !== 'number') {
    delete el.dataset.value;
    el.textContent = '–';
    return;
  }
  const raw = String(v);
  if (el.dataset.value !== raw || el.textContent !== formatNumber(v)) {
    el.dataset.value = raw;
    el.textContent = formatNumber(v);
  }
}

// showText puts the API's string s into el, raw in data-value too.
export function showText(el, s) {
  if (el.dataset.value !== s || el.textContent !== s) {
    el.dataset.value = s;
    el.textContent = s;
  }
}

const pad = (n) => String(n).padStart(2, '0');

// clockTime is the local time of d as HH:MM:SS, for "Updated HH:MM:SS".
export function clockTime(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// utcText writes an RFC 3339 time in UTC: a series point's start as
// "2025-11-26 13:05 UTC" (minute, hour) or "2025-11-26" (day), any other
// time to the second. The API's points start on whole UTC intervals, so
// the page speaks UTC throughout.
export function utcText(iso, interval) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = new Date(t).toISOString().replace('T', ' ');
  switch (interval) {
    case 'day':
      return s.slice(0, 10);
    case 'minute':
    case 'hour':
      return `${s.slice(0, 16)} UTC`;
    default:
      return `${s.slice(0, 19)} UTC`;
  }
}

// rfc3339 writes d in UTC to the second, the form the API takes.
export function rfc3339(d) {
  return new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

// fromInput turns a datetime-local input's value, read as UTC as its label
// says, into RFC 3339; '' stays ''. The API validates the result.
export function fromInput(value) {
  if (!value) return '';
  const withSeconds = value.length === 16 ? `${value}:00` : value;
  return `${withSeconds}Z`;
}
