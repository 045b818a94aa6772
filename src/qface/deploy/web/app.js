// The qface serve page: Verify, Search, Enroll and Quality views over the
// server's JSON endpoints (see docs/web.md). Plain JavaScript, no library, no
// network access beyond this server.
'use strict';

const $ = (selector, root = document) => root.querySelector(selector);
const state = { health: null, calibration: null };

// ---------------------------------------------------------------- helpers

// An element: el('p', {class: 'x', text: 'hi'}, child, ...).
function el(tag, attrs = {}, ...children) {
  const svg = ['svg', 'rect', 'circle', 'line', 'g', 'text', 'title'].includes(tag);
  const node = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const fmt = (x, digits = 3) => (x === undefined || x === null ? '–' : Number(x).toFixed(digits));
// Feature norms live on each model's own scale (about 20-100 for trained models): three significant digits.
const norm = (x) => (Math.abs(x) >= 1000 ? Number(x).toFixed(0) : Number(x).toPrecision(3));

// 1e-3 -> "1 in 1,000 (1e-3)"
function farText(far) {
  const inverse = Math.round(1 / far);
  return `1 in ${inverse.toLocaleString('en-US')} (${far.toExponential(0)})`;
}

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// What an HTTP status means for the person using the page.
function explain(err) {
  const said = err.message;
  switch (err.status) {
    case 0: return `The server did not answer (${said}). Is qface serve still running?`;
    case 400: return `The server could not use this: ${said}`;
    case 401: return `Not allowed: ${said}`;
    case 403: return `Read-only server: ${said}`;
    case 404: return `Not found: ${said}`;
    case 413: return `The upload is too large (photos travel base64-encoded, about 4/3 of their file size): ${said}`;
    case 422: return `No usable face: ${said}`;
    case 503: return `Not available: ${said}`;
    default: return `Error ${err.status}: ${said}`;
  }
}

// One request; JSON in, JSON out. Uploads report progress through
// opts.progress(fraction, text). Rejects with ApiError carrying the server's message.
function api(method, path, body, opts = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    if (body !== undefined) xhr.setRequestHeader('Content-Type', 'application/json');
    if (opts.token) xhr.setRequestHeader('Authorization', `Bearer ${opts.token}`);
    if (opts.progress) {
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) opts.progress(e.loaded / e.total,
          `Uploading ${(e.loaded / 1048576).toFixed(1)} of ${(e.total / 1048576).toFixed(1)} MB`);
      };
      xhr.upload.onload = () => opts.progress(1, 'Uploaded; the server is working…');
    }
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data);
      else reject(new ApiError(xhr.status, (data && data.error) || xhr.statusText || 'unexpected answer', data));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network error'));
    xhr.send(body === undefined ? null : JSON.stringify(body));
  });
}

function base64Of(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(new ApiError(400, `${file.name}: the browser cannot read this file`));
    reader.readAsDataURL(file);
  });
}

// A view's button action: clears the view, shows progress while `work` runs,
// then its result (a node) or its error; `ready` re-enables the button.
function oneRequest(ui, go, ready, work) {
  return async () => {
    ui.error(null);
    ui.result.replaceChildren();
    ui.busy(true);
    go.disabled = true;
    try {
      ui.result.replaceChildren(await work());
    } catch (err) {
      ui.error(err);
    } finally {
      ui.busy(false);
      ready();
    }
  };
}

// The per-view chrome: progress bar, error box, result box.
function viewParts(view) {
  const section = $(`#view-${view}`);
  const bar = $('.progress', section);
  return {
    busy(on) {
      bar.hidden = !on;
      section.setAttribute('aria-busy', on ? 'true' : 'false');
      if (on) this.progress(0, 'Reading the photos…');
    },
    progress(fraction, text) {
      $('progress', bar).value = fraction;
      $('.progress-text', bar).textContent = text;
    },
    error(err) {
      const box = $(`#${view}-error`);
      box.hidden = !err;
      box.textContent = err ? (err instanceof ApiError ? explain(err) : String(err.message || err)) : '';
    },
    result: $(`#${view}-result`),
  };
}

// A drop zone around a file input: dropped files go into the input.
function dropZone(input, onChange) {
  const zone = input.closest('.drop');
  const list = $('.drop-files', zone);
  const show = () => {
    const n = input.files.length;
    list.textContent = n === 0 ? '' : n === 1 ? input.files[0].name : `${n} photos`;
    zone.classList.toggle('has-files', n > 0);
    onChange();
  };
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const dt = new DataTransfer();
    for (const f of e.dataTransfer.files) {
      dt.items.add(f);
      if (!input.multiple) break;
    }
    input.files = dt.files;
    show();
  });
  input.addEventListener('change', show);
}

// The calibrated FARs as options of every FAR selector.
function fillFarSelectors() {
  const v = state.calibration && state.calibration.verify;
  for (const select of document.querySelectorAll('.far-select')) {
    select.replaceChildren();
    if (!v) {
      select.append(el('option', { value: '', text: 'no calibration: scores only' }));
      select.disabled = true;
      continue;
    }
    for (const far of v.fars) {
      select.append(el('option', { value: far, text: farText(far), selected: Math.abs(far - v.default_far) < 1e-9 * far }));
    }
  }
}

// ---------------------------------------------------------------- quality

// Gate warning in plain words, or null.
function qualityWarning(q, label) {
  const gate = state.calibration.quality.min_quality;
  if (gate === null || !q.recapture) return null;
  const [value, limit] = q.quality !== undefined ? [fmt(q.quality), fmt(gate)] : [norm(q.norm), norm(gate)];
  return el('p', { class: 'warning', role: 'note' },
    `${label}: low quality (${value}, below the gate ${limit}). The model does not trust this photo, `
    + 'so a decision on it may be wrong. Retake it facing the camera, in focus, evenly lit and unobstructed.');
}

// The quality of one image on each scale the server gives.
function qualityBlock(q, label) {
  const gate = state.calibration.quality.min_quality;
  const rows = [];
  if (q.quality !== undefined) {
    rows.push(el('div', { class: 'qrow' },
      el('span', { class: 'qlabel', text: 'Quality' }),
      el('meter', { min: 0, max: 1, low: Math.min(gate ?? 0.25, 0.74), high: 0.75, optimum: 1, value: q.quality,
                    'aria-label': `${label} calibrated quality` }),
      el('span', { class: 'qvalue', text: `${fmt(q.quality, 2)} of 1` })));
  }
  if (q.ofiq !== undefined) {
    rows.push(el('div', { class: 'qrow' },
      el('span', { class: 'qlabel', text: 'OFIQ' }),
      el('meter', { min: 0, max: 100, low: 25, high: 75, optimum: 100, value: q.ofiq,
                    'aria-label': `${label} OFIQ unified score` }),
      el('span', { class: 'qvalue', text: `${Math.round(q.ofiq)} of 100` })));
  }
  rows.push(el('div', { class: 'qrow' },
    el('span', { class: 'qlabel', text: 'Norm' }),
    el('span', { class: 'qvalue wide', text: `${norm(q.norm)} (feature norm: higher = the model is surer)` })));
  const scale = q.quality !== undefined ? 'calibrated [0, 1]: 0.5 is a median photo of the calibration set'
    : 'no quality calibration loaded: the raw feature norm only';
  return el('div', { class: 'quality' }, rows, el('p', { class: 'muted small', text: scale }), qualityWarning(q, label));
}

// The photo with the detected box and five points drawn over it.
function annotated(file, a, label) {
  const url = URL.createObjectURL(file);
  const r = Math.max(a.width, a.height) / 90;
  const svg = el('svg', { viewBox: `0 0 ${a.width} ${a.height}`, class: 'overlay', 'aria-hidden': 'true',
                          preserveAspectRatio: 'none' },
    el('rect', { x: a.box[0], y: a.box[1], width: a.box[2], height: a.box[3], class: 'box',
                 'stroke-width': r / 2 }),
    a.landmarks.map(([x, y]) => el('circle', { cx: x, cy: y, r, class: 'point' })));
  const where = a.aligned_input ? 'taken as an already aligned crop: template points shown'
    : `face found at ${a.box[0]}, ${a.box[1]} (${a.box[2]} × ${a.box[3]} px)`;
  return el('figure', { class: 'annotated' },
    el('div', { class: 'stage' }, el('img', { src: url, alt: `${label} as uploaded (${file.name}), ${where}` }), svg),
    el('figcaption', { class: 'muted small', text: `${file.name}: ${where}` }));
}

function cropImage(a, label) {
  return el('img', { class: 'crop', src: `data:image/png;base64,${a.crop}`, width: 112, height: 112,
                     alt: `${label}: the aligned 112 × 112 crop the model sees` });
}

// ---------------------------------------------------------------- verify

function setupVerify() {
  const ui = viewParts('verify');
  const a = $('#verify-a'), b = $('#verify-b'), go = $('#verify-go');
  const ready = () => { go.disabled = !(a.files.length && b.files.length); };
  const chosen = () => { ui.result.replaceChildren(); ready(); };  // a result for other photos is stale
  dropZone(a, chosen);
  dropZone(b, chosen);
  const run = oneRequest(ui, go, ready, async () => {
    const [fa, fb] = [a.files[0], b.files[0]];
    const body = { a: await base64Of(fa), b: await base64Of(fb), crops: true };
    const far = $('#verify-far').value;
    if (far) body.far = Number(far);
    const r = await api('POST', '/verify', body, { progress: (f, t) => ui.progress(f, t) });
    return verifyResult(r, fa, fb);
  });
  go.addEventListener('click', run);
  $('#verify-far').addEventListener('change', () => { if (ui.result.childElementCount) run(); });
}

function verifyResult(r, fa, fb) {
  let verdict;
  if (r.match === undefined) {
    verdict = el('p', { class: 'verdict unknown', 'data-decision': 'none' },
      `Cosine similarity ${fmt(r.cosine)}. No verification calibration is loaded, so there is no decision `
      + '(start qface serve with --calibration).');
  } else {
    verdict = el('div', { class: `verdict ${r.match ? 'match' : 'no-match'}`, 'data-decision': r.match ? 'match' : 'no-match',
                          'data-cosine': r.cosine, 'data-far': r.far },
      el('strong', { text: r.match ? 'Same person' : 'Not the same person' }),
      el('span', { text: ` — cosine similarity ${fmt(r.cosine)} is ${r.match ? 'above' : 'not above'} the threshold `
        + `${fmt(r.threshold)} for a false accept rate of ${farText(r.far)}.` }));
  }
  const side = (q, file, label) => el('article', { class: 'card' },
    el('h3', { text: label }),
    el('div', { class: 'images' }, annotated(file, q, label), cropImage(q, label)),
    qualityBlock(q, label));
  return el('div', {}, verdict, el('div', { class: 'pair' }, side(r.a, fa, 'Photo A'), side(r.b, fb, 'Photo B')));
}

// ---------------------------------------------------------------- search

function thumbnails(name, count, generation) {
  const imgs = [];
  for (let i = 0; i < count; ++i) {
    imgs.push(el('img', { class: 'thumb', width: 64, height: 64, loading: 'lazy',
                          src: `/thumbnail?name=${encodeURIComponent(name)}&index=${i}&g=${generation}`,
                          alt: `${name}: enrolled photo ${i + 1} of ${count}` }));
  }
  return el('span', { class: 'thumbs' }, imgs.length ? imgs : el('span', { class: 'muted small', text: 'no thumbnails' }));
}

function setupSearch() {
  const ui = viewParts('search');
  const photo = $('#search-photo'), go = $('#search-go');
  const ready = () => { go.disabled = !photo.files.length; };
  dropZone(photo, () => { ui.result.replaceChildren(); ready(); });
  const run = oneRequest(ui, go, ready, async () => {
    const body = { image: await base64Of(photo.files[0]), k: Number($('#search-k').value) };
    const far = $('#search-far').value;
    if (far) body.far = Number(far);
    const r = await api('POST', '/search', body, { progress: (f, t) => ui.progress(f, t) });
    return searchResult(r);
  });
  go.addEventListener('click', run);
  for (const s of ['#search-far', '#search-k']) $(s).addEventListener('change', () => { if (ui.result.childElementCount) run(); });
}

function searchResult(r) {
  const parts = [];
  if (r.hits.length === 0) parts.push(el('p', { class: 'verdict no-match', text: 'The gallery is empty.' }));
  else if (r.match === false) {
    parts.push(el('p', { class: 'verdict no-match', 'data-decision': 'no-match' },
      el('strong', { text: 'No match at this FAR' }),
      ` — the best score ${fmt(r.hits[0].score)} (${r.hits[0].name}) is not above the threshold ${fmt(r.threshold)} `
      + `for a false accept rate of ${farText(r.far)}.`));
  } else if (r.match === true) {
    parts.push(el('p', { class: 'verdict match', 'data-decision': 'match' },
      el('strong', { text: `Match: ${r.hits[0].name}` }),
      ` — score ${fmt(r.hits[0].score)} above the threshold ${fmt(r.threshold)} at ${farText(r.far)}.`));
  }
  const list = el('ol', { class: 'hits', 'aria-label': 'Closest identities, best first' });
  for (const h of r.hits) {
    const width = Math.max(0, Math.min(1, h.score)) * 100;
    list.append(el('li', { 'data-name': h.name, 'data-score': h.score, class: h.match ? 'is-match' : '' },
      el('span', { class: 'hit-name', text: h.name }),
      el('span', { class: 'score' },
        el('span', { class: 'bar', 'aria-hidden': 'true' }, el('span', { class: 'fill', 'data-w': width })),
        el('span', { text: `${fmt(h.score)}${h.match ? ' match' : ''}` })),
      el('span', { class: 'muted small', text: `${h.images} photo${h.images === 1 ? '' : 's'} enrolled` }),
      thumbnails(h.name, h.thumbnails, r.generation)));
  }
  // Bar widths through the CSSOM (the page's policy allows no inline style attributes).
  for (const fill of list.querySelectorAll('.fill')) fill.style.width = `${fill.dataset.w}%`;
  parts.push(list);
  parts.push(el('h3', { text: 'The photo searched for' }), qualityBlock(r, 'Search photo'));
  return el('div', {}, parts);
}

// ---------------------------------------------------------------- enroll

function setupEnroll() {
  const ui = viewParts('enroll');
  const form = $('#enroll-form'), photos = $('#enroll-photos');
  dropZone(photos, () => {});
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    ui.error(null);
    ui.result.replaceChildren();
    const name = $('#enroll-name').value.trim();
    if (!name) { ui.error(new Error('Give the person a name.')); $('#enroll-name').focus(); return; }
    if (!photos.files.length) { ui.error(new Error('Choose at least one photo.')); return; }
    ui.busy(true);
    $('#enroll-go').disabled = true;
    try {
      const files = [...photos.files];
      const images = [];
      for (const f of files) images.push(await base64Of(f));
      const r = await api('POST', '/enroll', { name, images, files: files.map((f) => f.name) },
        { token: $('#enroll-token').value, progress: (f, t) => ui.progress(f, t) });
      ui.result.replaceChildren(enrollResult(r));
      $('#enroll-name').value = '';  // the token stays for further changes
      photos.value = '';
      photos.dispatchEvent(new Event('change'));
      await refreshGallery();
    } catch (err) {
      ui.error(err);
      if (err.body && err.body.rejected) ui.result.replaceChildren(rejectedList(err.body.rejected));
    } finally {
      ui.busy(false);
      $('#enroll-go').disabled = false;
    }
  });
}

function rejectedList(rejected) {
  if (!rejected.length) return el('p', { class: 'muted', text: 'No photo was rejected.' });
  return el('div', {}, el('h3', { text: 'Rejected photos' }),
    el('ul', { class: 'rejected' }, rejected.map((r) => el('li', {}, el('strong', { text: r.image }), `: ${r.reason}`))));
}

function enrollResult(r) {
  const isNew = r.new_identities > 0;
  return el('div', {},
    el('p', { class: 'verdict match' },
      el('strong', { text: `Enrolled ${r.images_enrolled} photo${r.images_enrolled === 1 ? '' : 's'} as ${r.name}` }),
      isNew ? ' (a new identity).' : ' (fused into the existing template).',
      ` The gallery now has ${r.gallery_size} identities.`),
    rejectedList(r.rejected));
}

async function refreshGallery() {
  const list = $('#gallery-list'), summary = $('#gallery-summary');
  list.replaceChildren();
  let g;
  try {
    g = await api('GET', '/gallery');
  } catch (err) {
    summary.textContent = err.status === 503 ? 'No gallery is loaded (qface serve --gallery).' : explain(err);
    return;
  }
  if (state.health) {
    state.health.gallery_size = g.size;
    showServer();
  }
  summary.textContent = `${g.size} identit${g.size === 1 ? 'y' : 'ies'}`
    + (g.identities.length < g.size ? ` (the first ${g.identities.length} shown)` : '') + '.';
  for (const id of g.identities) {
    const remove = el('button', { type: 'button', class: 'danger', text: 'Remove',
                                  'aria-label': `Remove ${id.name} from the gallery`, disabled: !g.writable });
    remove.addEventListener('click', () => removeIdentity(id.name));
    list.append(el('li', { 'data-name': id.name },
      thumbnails(id.name, id.thumbnails, g.generation),
      el('span', { class: 'hit-name', text: id.name }),
      el('span', { class: 'muted small', text: `${id.images} photo${id.images === 1 ? '' : 's'}` }),
      remove));
  }
}

async function removeIdentity(name) {
  const ui = viewParts('enroll');
  if (!window.confirm(`Remove ${name} from the gallery? This cannot be undone.`)) return;
  ui.error(null);
  try {
    const r = await api('POST', '/remove', { name }, { token: $('#enroll-token').value });
    ui.result.replaceChildren(el('p', { class: 'verdict', text: `Removed ${r.removed}; ${r.gallery_size} identities left.` }));
    await refreshGallery();
  } catch (err) {
    ui.error(err);
  }
}

// ---------------------------------------------------------------- quality explorer

function setupQuality() {
  const ui = viewParts('quality');
  const photos = $('#quality-photos'), go = $('#quality-go');
  const ready = () => { go.disabled = !photos.files.length; };
  dropZone(photos, ready);
  go.addEventListener('click', async () => {
    ui.error(null);
    ui.result.replaceChildren();
    ui.busy(true);
    go.disabled = true;
    const files = [...photos.files], rated = [], failed = [];
    let done = 0;
    const one = async (file) => {
      try {
        rated.push({ file, r: await api('POST', '/align', { image: await base64Of(file) }) });
      } catch (err) {
        failed.push({ file, reason: err instanceof ApiError ? explain(err) : String(err) });
      }
      done += 1;
      ui.progress(done / files.length, `Rated ${done} of ${files.length} photos`);
    };
    // Two requests in flight: the server's model runs one at a time anyway.
    const queue = files.slice();
    await Promise.all([0, 1].map(async () => { while (queue.length) await one(queue.shift()); }));
    ui.busy(false);
    ready();
    ui.result.replaceChildren(qualityResult(rated, failed));
  });
}

// The norm histogram as an SVG bar chart, with a text summary for screen readers.
function histogram(norms) {
  const W = 600, H = 160, pad = 24;
  const lo = Math.min(...norms), hi = Math.max(...norms);
  const bins = Math.max(5, Math.min(30, Math.ceil(Math.sqrt(norms.length)) * 2));
  const span = hi > lo ? hi - lo : 1;
  const counts = new Array(bins).fill(0);
  for (const n of norms) counts[Math.min(bins - 1, Math.floor(((n - lo) / span) * bins))] += 1;
  const top = Math.max(...counts);
  const bw = (W - 2 * pad) / bins;
  const sorted = norms.slice().sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)];
  const description = `Histogram of ${norms.length} feature norms from ${norm(lo)} to ${norm(hi)}, median ${norm(median)}.`;
  return el('figure', { class: 'histogram' },
    el('svg', { viewBox: `0 0 ${W} ${H + 20}`, role: 'img', 'aria-label': description },
      counts.map((c, i) => el('rect', { x: pad + i * bw + 1, y: pad + (H - 2 * pad) * (1 - c / top), width: bw - 2,
                                        height: (H - 2 * pad) * (c / top), class: 'bin' },
        el('title', { text: `${c} photo${c === 1 ? '' : 's'} with norm ${norm(lo + (i * span) / bins)}–${norm(lo + ((i + 1) * span) / bins)}` }))),
      el('line', { x1: pad, x2: W - pad, y1: H - pad, y2: H - pad, class: 'axis' }),
      el('text', { x: pad, y: H - 4, class: 'tick', text: norm(lo) }),
      el('text', { x: W - pad, y: H - 4, class: 'tick end', text: norm(hi) }),
      el('text', { x: W / 2, y: H + 14, class: 'tick middle', text: 'feature norm (higher = trusted more)' })),
    el('figcaption', { class: 'muted small', text: description }));
}

function qualityResult(rated, failed) {
  const parts = [];
  const value = (r) => (r.quality !== undefined ? r.quality : r.norm);
  rated.sort((x, y) => value(y.r) - value(x.r));
  if (rated.length) {
    const low = rated.filter((x) => x.r.recapture).length;
    parts.push(el('p', { text: `${rated.length} photo${rated.length === 1 ? '' : 's'} rated, best first`
      + (state.calibration.quality.min_quality !== null ? `; ${low} below the quality gate.` : '.') }));
    parts.push(histogram(rated.map((x) => x.r.norm)));
    const grid = el('ol', { class: 'grid', 'aria-label': 'Photos sorted by quality, best first' });
    rated.forEach(({ file, r }, i) => {
      grid.append(el('li', { class: r.recapture ? 'low' : '', 'data-norm': r.norm },
        cropImage(r, `${file.name} (rank ${i + 1})`),
        el('span', { class: 'small name', text: file.name }),
        el('span', { class: 'qvalue', text: r.quality !== undefined ? `quality ${fmt(r.quality, 2)}` : `norm ${norm(r.norm)}` }),
        r.ofiq !== undefined ? el('span', { class: 'small', text: `OFIQ ${Math.round(r.ofiq)}` }) : null,
        r.recapture ? el('span', { class: 'badge', text: 'below gate' }) : null));
    });
    parts.push(grid);
  }
  if (failed.length) {
    parts.push(el('h3', { text: 'Not rated' }),
      el('ul', { class: 'rejected' }, failed.map((f) => el('li', {}, el('strong', { text: f.file.name }), `: ${f.reason}`))));
  }
  return el('div', {}, parts);
}

// ---------------------------------------------------------------- tabs and start

function setupTabs() {
  const tabs = [...document.querySelectorAll('[role=tab]')];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      $(`#${t.getAttribute('aria-controls')}`).hidden = !on;
    }
    if (tab.id === 'tab-enroll') refreshGallery();
  };
  tabs.forEach((t, i) => {
    t.addEventListener('click', () => select(t));
    t.addEventListener('keydown', (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (e.key === 'Home' || e.key === 'End' || step) {
        e.preventDefault();
        const next = tabs[e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : (i + step + tabs.length) % tabs.length];
        next.focus();
        select(next);
      }
    });
  });
}

function showServer() {
  const h = state.health;
  $('#server-info').textContent = `Model ${h.arch} (${h.dim}-d${h.flip_fused ? ', flip-fused' : ''}) · `
    + `${h.detector === 'ssd' ? 'SSD CNN' : 'HOG'} face detector · gallery of `
    + `${h.gallery_size} identit${h.gallery_size === 1 ? 'y' : 'ies'} · `
    + `${h.writable ? 'enrolment allowed with the admin token' : 'read-only'}`;
}

async function start() {
  setupTabs();
  setupVerify();
  setupSearch();
  setupEnroll();
  setupQuality();
  const info = $('#server-info');
  try {
    [state.health, state.calibration] = await Promise.all([api('GET', '/health'), api('GET', '/calibration')]);
  } catch (err) {
    info.textContent = explain(err);
    info.classList.add('error');
    return;
  }
  fillFarSelectors();
  showServer();
  const h = state.health;
  $('#enroll-readonly').hidden = h.writable;
  $('#enroll-fields').disabled = !h.writable;
  document.body.dataset.ready = 'true';
}

start();
