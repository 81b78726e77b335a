// The dashboard's entry point. This first version proves that the page,
// its modules and the vendored chart library load under the page's
// Content-Security-Policy; the views come next.
import uPlot from './vendor/uPlot.esm.js';

document.getElementById('status-line').textContent =
  typeof uPlot === 'function' ? 'Ready' : 'The chart library did not load';
