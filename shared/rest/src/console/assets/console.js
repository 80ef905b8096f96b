// The dbaas console's one script: plain DOM code, no dependencies, no build.
//
// Each page's <body data-page="..."> names the function below that runs it.
// Every datum comes from the JSON API under /api/v1, with the API key from
// sessionStorage as the Bearer header; the key never goes into a URL or a
// cookie. Nothing is written to the page as HTML (the Content-Security-
// Policy requires Trusted Types and allows none): elements are built with
// el() and text is set with textContent, so API data cannot inject markup.
// A 401 from the API signs out at once: the page is emptied and the sign-in
// page shows why, so a wrong or missing key never renders data.

const KEY = 'dbaas.apiKey';
const FLASH = 'dbaas.flash';
const RETURN_TO = 'dbaas.returnTo';
/** How often a page re-reads what changes, while its tab is visible. */
const REFRESH_MS = 3000;

// ---------------------------------------------------------------- helpers

const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes (`text` sets its text) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Shows `text` in a message element (hidden when empty). */
function say(node, text, kind = '') {
  node.textContent = text || '';
  node.hidden = !text;
  node.classList.remove('error', 'ok');
  if (kind) node.classList.add(kind);
}

function time(iso) {
  if (!iso) return el('span', { class: 'muted', text: '—' });
  const at = new Date(iso);
  return el('time', { datetime: iso, title: iso, text: at.toLocaleString() });
}

function badge(status) {
  return el('span', { class: `status status-${status}`, text: String(status).replaceAll('_', ' ') });
}

function dbLink(db) {
  return el('a', { href: `/console/databases/${encodeURIComponent(db.id)}`, text: db.name });
}

/** `{size: "db.t3.large"}` → `size db.t3.large`. */
function target(values) {
  const parts = Object.entries(values || {}).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : '—';
}

// -------------------------------------------------------------------- API

/** A non-2xx answer (problem+json), or a network failure (status 0). */
class Problem extends Error {
  constructor(status, body) {
    super(body?.detail || body?.title || `HTTP ${status}`);
    this.status = status;
    this.title = body?.title || '';
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

/** Thrown after a sign-out has started: nothing more to do on this page. */
class SignedOut extends Error {}

/** One API call with `key`: `{data, etag}`, or throws a Problem. */
async function request(method, path, { body, key = sessionStorage.getItem(KEY) } = {}) {
  if (!key) throw new Problem(401, { detail: 'no API key' });
  const headers = { Accept: 'application/json', Authorization: `Bearer ${key}` };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    throw new Problem(0, { title: 'Network error', detail: `the API could not be reached (${e.message})` });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new Problem(response.status, data);
  return { data, etag: response.headers.get('ETag') };
}

/** `request` with the signed-in key; a 401 signs out. Returns the body. */
async function api(method, path, options = {}) {
  try {
    return (await request(method, path, options)).data;
  } catch (e) {
    if (e instanceof Problem && e.status === 401) signOut(`The API refused the key (${e.message}). Sign in again.`, 'error');
    throw e;
  }
}

function flash(text, kind = '') {
  sessionStorage.setItem(FLASH, JSON.stringify({ text, kind }));
}

function showFlash() {
  const raw = sessionStorage.getItem(FLASH);
  if (!raw) return;
  sessionStorage.removeItem(FLASH);
  try {
    const { text, kind } = JSON.parse(raw);
    const box = $('#flash');
    if (kind === 'error') box.setAttribute('role', 'alert');
    box.replaceChildren(el('p', { class: `message ${kind}`, text }));
  } catch {
    // A malformed flash is dropped.
  }
}

let signingOut = false;

/**
 * Forgets the key, empties the page and goes to the sign-in page, which
 * shows `message` (and returns here after the next sign-in if `comeBack`).
 */
function signOut(message, kind = '', comeBack = true) {
  if (signingOut) throw new SignedOut();
  signingOut = true;
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(RETURN_TO);
  if (message) flash(message, kind);
  if (comeBack && document.body.dataset.page !== 'sign-in') {
    sessionStorage.setItem(RETURN_TO, location.pathname + location.search);
  }
  $('#main').replaceChildren(el('p', { text: 'Signing out…' }));
  $('#nav').hidden = true;
  location.replace('/console/sign-in');
  throw new SignedOut();
}

/** The signed-in key, or off to the sign-in page. */
function requireKey() {
  if (!sessionStorage.getItem(KEY)) signOut('Sign in with an API key to continue.');
}

/** A return path after sign-in: a console page of this origin only. */
function returnPath(path) {
  return path && path.startsWith('/console/') && !path.startsWith('//') ? path : '/console/';
}

// --------------------------------------------------------------- refresh

/**
 * Runs `load` every REFRESH_MS while the tab is visible: never two at once,
 * not at all while hidden (`visibilitychange`), and once right away when
 * the tab shows again. `stop()` ends it.
 */
function poll(load) {
  let timer = 0;
  let busy = false;
  let stopped = false;
  const run = async () => {
    clearTimeout(timer);
    timer = 0;
    if (stopped || busy || document.hidden) return;
    busy = true;
    try {
      await load();
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    } catch (e) {
      if (e instanceof SignedOut) {
        stopped = true;
        return;
      }
      stamp(`Refresh failed (${e.message}); retrying.`);
    } finally {
      busy = false;
    }
    if (!stopped && !document.hidden) timer = setTimeout(run, REFRESH_MS);
  };
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = 0;
      stamp('Refresh paused while this tab is hidden.');
    } else {
      run();
    }
  });
  timer = setTimeout(run, REFRESH_MS);
  return {
    now: run,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

function stamp(text) {
  const node = $('#updated');
  if (!node) return;
  node.textContent =
    text || `Updated ${new Date().toLocaleTimeString()}; refreshed every ${REFRESH_MS / 1000} s while this tab is visible.`;
}

// ------------------------------------------------------------------ forms

/** Enables a form whose fieldset the HTML ships disabled (no JS, no form). */
function enable(form, on = true) {
  $('fieldset', form).disabled = !on;
  form.setAttribute('aria-busy', on ? 'false' : 'true');
}

function clearErrors(form) {
  for (const node of form.querySelectorAll('.field-error')) node.textContent = '';
  for (const node of form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  const summary = $('#form-error', form);
  if (summary) say(summary, '');
}

/**
 * Shows a rejection: each `errors[].field` next to its field (`#e-<field>`,
 * input `#f-<field>`), the rest and a summary at the top of the form.
 */
function showProblem(form, problem) {
  clearErrors(form);
  const general = [];
  let first = null;
  for (const { field, message } of problem.errors) {
    const slot = field && $(`#e-${CSS.escape(field)}`, form);
    if (!slot) {
      general.push(field ? `${field}: ${message}` : message);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    const input = $(`#f-${CSS.escape(field)}`, form);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first ??= input;
    }
  }
  const title = problem.status ? `${problem.title || 'Rejected'} (${problem.status})` : problem.title;
  const detail = general.length ? general.join('; ') : problem.message;
  say($('#form-error', form), `${title}: ${detail}`, 'error');
  (first || $('#form-error', form)).focus?.();
}

/** A whole number as a number; anything else as typed, for the API to name. */
function wholeNumber(text) {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : text;
}

// ---------------------------------------------------------------- sign in

async function signInPage() {
  const form = $('#sign-in-form');
  const input = $('#api-key');
  const error = $('#sign-in-error');
  if (sessionStorage.getItem(KEY)) {
    location.replace('/console/');
    return;
  }
  enable(form);
  input.focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    error.textContent = '';
    input.removeAttribute('aria-invalid');
    if (!key) {
      error.textContent = 'Enter an API key.';
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    enable(form, false);
    try {
      await request('GET', '/databases?limit=1', { key });
    } catch (e) {
      error.textContent =
        e.status === 401 ? `The API refused this key: ${e.message}.` : `Could not sign in: ${e.message}.`;
      input.setAttribute('aria-invalid', 'true');
      enable(form);
      input.focus();
      input.select();
      return;
    }
    sessionStorage.setItem(KEY, key);
    const to = returnPath(sessionStorage.getItem(RETURN_TO));
    sessionStorage.removeItem(RETURN_TO);
    location.assign(to);
  });
}

// -------------------------------------------------------- databases list

/** A desired value, and the running one below it when it differs. */
function valueCell(desired, current, format = String) {
  const td = el('td', { class: 'value' }, el('span', { class: 'desired', text: format(desired) }));
  if (current === null || current === undefined) {
    td.dataset.drift = 'unknown';
    td.append(el('span', { class: 'current muted', text: 'not running yet' }));
  } else if (current !== desired) {
    td.dataset.drift = 'true';
    td.append(el('span', { class: 'current', text: `differs: runs ${format(current)}` }));
  } else {
    td.dataset.drift = 'false';
  }
  return td;
}

const gib = (n) => `${n} GiB`;

async function databasesPage() {
  requireKey();
  const params = new URLSearchParams(location.search);
  // What the page links carry over: the filters and the page size.
  const filters = new URLSearchParams();
  for (const name of ['status', 'engine', 'limit']) {
    const value = params.get(name);
    if (value) filters.set(name, value);
  }
  $('#filter-status').value = filters.get('status') || '';
  $('#filter-engine').value = filters.get('engine') || '';
  const query = new URLSearchParams(filters);
  if (!query.has('limit')) query.set('limit', '25');
  if (params.get('cursor')) query.set('cursor', params.get('cursor'));

  const table = $('#databases');
  const message = $('#list-message');
  const load = async () => {
    const page = await api('GET', `/databases?${query}`);
    // The active operations, for their type and phase.
    const active = await Promise.all(
      page.items.map((db) =>
        db.active_operation_id
          ? api('GET', `/operations/${encodeURIComponent(db.active_operation_id)}`).catch((e) => {
              if (e instanceof SignedOut) throw e;
              return null;
            })
          : null,
      ),
    );
    $('tbody', table).replaceChildren(
      ...page.items.map((db, i) => {
        const op = active[i];
        return el(
          'tr',
          { 'data-id': db.id, 'data-status': db.status },
          el('th', { scope: 'row' }, dbLink(db), el('span', { class: 'id muted mono', text: db.id })),
          el('td', { text: db.engine }),
          valueCell(db.version, db.current_version),
          el('td', {}, badge(db.status)),
          valueCell(db.size, db.current_size),
          valueCell(db.replicas, db.current_replicas),
          valueCell(db.storage_gb, db.current_storage_gb, gib),
          el(
            'td',
            {},
            db.active_operation_id
              ? [
                  el('span', { text: op ? op.type.replaceAll('_', ' ') : db.active_operation_id }),
                  op ? [' ', badge(op.status)] : null,
                ]
              : el('span', { class: 'muted', text: '—' }),
          ),
        );
      }),
    );
    table.setAttribute('aria-busy', 'false');
    $('#list-empty').hidden = page.items.length > 0;
    const next = $('#next-page');
    next.hidden = !page.next_cursor;
    if (page.next_cursor) {
      const to = new URLSearchParams(filters);
      to.set('cursor', page.next_cursor);
      next.setAttribute('href', `/console/?${to}`);
    }
    const first = $('#first-page');
    first.hidden = !params.get('cursor');
    first.setAttribute('href', filters.size ? `/console/?${filters}` : '/console/');
    say(message, '');
    stamp();
  };
  try {
    await load();
  } catch (e) {
    if (e instanceof SignedOut) return;
    say(message, `The databases could not be listed: ${e.message}`, 'error');
  }
  poll(load);
}

// ------------------------------------------------------------ new database

async function newDatabasePage() {
  requireKey();
  const form = $('#create-form');
  const engine = $('#f-engine');
  const version = $('#f-version');

  const loadVersions = async () => {
    const chosen = engine.value;
    version.replaceChildren(el('option', { value: '', text: 'Newest (reading the catalog…)' }));
    delete version.dataset.engine;
    $('#e-version').textContent = '';
    try {
      const { items } = await api('GET', `/versions?engine=${encodeURIComponent(chosen)}`);
      if (engine.value !== chosen) return;
      version.replaceChildren(
        el('option', { value: '', text: 'Newest that is not deprecated' }),
        ...items.map((v) =>
          el('option', { value: v.name, disabled: v.deprecated, text: v.deprecated ? `${v.name} (deprecated)` : v.name }),
        ),
      );
      version.dataset.engine = chosen;
    } catch (e) {
      if (e instanceof SignedOut) throw e;
      version.replaceChildren(el('option', { value: '', text: 'Newest' }));
      $('#e-version').textContent = `The catalog could not be read: ${e.message}`;
    }
  };
  engine.addEventListener('change', () => loadVersions().catch(() => {}));
  enable(form);
  $('#f-name').focus();
  await loadVersions();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {
      name: $('#f-name').value.trim(),
      engine: engine.value,
      size: $('#f-size').value,
      replicas: wholeNumber($('#f-replicas').value),
      storage_gb: wholeNumber($('#f-storage_gb').value),
      deletion_protection: $('#f-deletion_protection').checked,
      deletion_policy: $('#f-deletion_policy').value,
    };
    if (version.value) body.version = version.value;
    enable(form, false);
    try {
      const db = await api('POST', '/databases', { body });
      flash(`Declared ${db.name}: the reconciler provisions it now.`, 'ok');
      location.assign(`/console/databases/${encodeURIComponent(db.id)}`);
    } catch (e) {
      if (e instanceof SignedOut) return;
      enable(form);
      showProblem(form, e);
    }
  });
}

// ---------------------------------------------------------- one database

/** The rows of "Desired and current": field, label, desired, current, format. */
const STATE_ROWS = [
  ['version', 'Version', (d) => d.version, (d) => d.current_version],
  ['size', 'Size', (d) => d.size, (d) => d.current_size],
  ['replicas', 'Replicas', (d) => d.replicas, (d) => d.current_replicas],
  ['storage_gb', 'Storage', (d) => d.storage_gb, (d) => d.current_storage_gb, gib],
  ['paused', 'Paused', (d) => d.paused, (d) => (d.current_size == null ? null : d.current_paused), (v) => (v ? 'yes' : 'no')],
  ['deletion_policy', 'On deletion', (d) => d.deletion_policy, (d) => d.current_deletion_policy],
  ['restarts', 'Restarts', (d) => d.restarts, (d) => d.current_restarts],
  ['auth_rotation', 'Credential rotations', (d) => d.auth_rotation, (d) => d.current_auth_rotation],
];

const CONNECTION_ROWS = [
  ['uri', 'URI'],
  ['host', 'Host'],
  ['port', 'Port'],
  ['namespace', 'Namespace'],
  ['primary_service', 'Primary Service'],
  ['standby_service', 'Standby Service'],
  ['pods_service', 'Pods Service'],
  ['auth_secret', 'Auth Secret'],
];

/** The desired fields the edit form changes, read from the form. */
const EDIT_FIELDS = {
  size: (form) => $('#f-size', form).value,
  replicas: (form) => wholeNumber($('#f-replicas', form).value),
  storage_gb: (form) => wholeNumber($('#f-storage_gb', form).value),
  version: (form) => $('#f-version', form).value,
  deletion_policy: (form) => $('#f-deletion_policy', form).value,
  paused: (form) => $('#f-paused', form).checked,
  deletion_protection: (form) => $('#f-deletion_protection', form).checked,
};

async function databasePage() {
  requireKey();
  const id = decodeURIComponent(location.pathname.split('/').pop());
  const path = `/databases/${encodeURIComponent(id)}`;
  const form = $('#edit-form');
  const actionMessage = $('#action-message');
  let db = null;
  let dirty = false;
  let upgradesFor = null;
  let upgrades = [];
  let eventLimit = 25;
  let refresher = null;
  let saving = false;

  $('#crumb').textContent = id;

  const fail = (e) => {
    if (e instanceof SignedOut) throw e;
    say(actionMessage, `${e.title || 'Rejected'}${e.status ? ` (${e.status})` : ''}: ${e.message}${
      e.errors.length ? ` [${e.errors.map((x) => `${x.field}: ${x.message}`).join('; ')}]` : ''
    }`, 'error');
  };

  const renderSummary = () => {
    $('#db-name').textContent = db.name;
    $('#crumb').textContent = db.name;
    document.title = `${db.name} · dbaas console`;
    const status = $('#db-status');
    status.replaceWith(el('span', { id: 'db-status', class: `status status-${db.status}`, text: db.status }));
    const active = db.active_operation_id
      ? el('code', { text: db.active_operation_id })
      : el('span', { class: 'muted', text: 'none' });
    $('#summary').replaceChildren(
      el('dt', { text: 'Id' }), el('dd', {}, el('code', { text: db.id })),
      el('dt', { text: 'Engine' }), el('dd', { text: db.engine }),
      el('dt', { text: 'Generation' }),
      el('dd', { text: `desired ${db.generation}, current state matched ${db.observed_generation}` }),
      el('dt', { text: 'Active operation' }), el('dd', {}, active),
      el('dt', { text: 'Created' }), el('dd', {}, time(db.created_at)),
      el('dt', { text: 'Updated' }), el('dd', {}, time(db.updated_at)),
    );
    const gone = db.deletion_requested;
    $('#pause').textContent = db.paused ? 'Resume' : 'Pause';
    $('#pause').disabled = gone;
    $('#restart').disabled = gone || db.paused;
    $('#delete').disabled = gone;
    $('#rotate').disabled = gone || db.paused;
    $('fieldset', form).disabled = gone || saving;
  };

  const renderState = () => {
    $('#state tbody').replaceChildren(
      ...STATE_ROWS.map(([field, label, desiredOf, currentOf, format = String]) => {
        const desired = desiredOf(db);
        let current = currentOf(db);
        // While paused KubeDB forces the policy to halt: not drift.
        const excused = field === 'deletion_policy' && db.current_paused;
        const drift = current === null || current === undefined ? 'unknown' : current !== desired && !excused ? 'true' : 'false';
        if (current === undefined) current = null;
        return el(
          'tr',
          { 'data-field': field, 'data-drift': drift },
          el('th', { scope: 'row', text: label }),
          el('td', { class: 'value desired', text: format(desired) }),
          el('td', { class: 'value current' }, current === null ? el('span', { class: 'muted', text: 'not observed yet' }) : format(current)),
          el(
            'td',
            { class: 'state' },
            drift === 'true'
              ? el('span', { class: 'drift-mark', text: 'differs' })
              : drift === 'false'
                ? el('span', { text: excused ? 'halt while paused' : 'in sync' })
                : el('span', { class: 'muted', text: 'pending' }),
          ),
        );
      }),
    );
  };

  const renderConditions = () => {
    $('#conditions tbody').replaceChildren(
      ...(db.conditions.length
        ? db.conditions.map((c) =>
            el('tr', { 'data-type': c.type },
              el('th', { scope: 'row', text: c.type }),
              el('td', { text: c.status }),
              el('td', { text: c.reason }),
              el('td', { text: c.message }),
              el('td', {}, time(c.last_transition_time))))
        : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'None reported yet.' }))]),
    );
  };

  const renderConnection = () => {
    const conn = db.connection;
    $('#connection').replaceChildren(
      ...(conn
        ? CONNECTION_ROWS.flatMap(([key, label]) => [
            el('dt', { text: label }),
            el('dd', {}, conn[key] == null ? el('span', { class: 'muted', text: 'none' }) : el('code', { text: conn[key] })),
          ])
        : [el('dt', { text: 'Status' }), el('dd', { text: 'Set once KubeDB reports the database ready.' })]),
    );
  };

  /** The version choices: the desired one, then the allowed upgrades. */
  const fillVersions = async () => {
    const running = db.current_version || db.version;
    if (upgradesFor !== running) {
      try {
        upgrades = (await api('GET', `${path}/upgrades`)).items.map((v) => v.name);
        upgradesFor = running;
      } catch (e) {
        if (e instanceof SignedOut) throw e;
        upgrades = [];
      }
    }
    const names = [...new Set([db.version, running, ...upgrades])];
    const select = $('#f-version');
    // Rebuilt only when the choices change (an open list stays open).
    const choices = JSON.stringify([running, names]);
    if (select.dataset.choices !== choices) {
      select.replaceChildren(...names.map((name) =>
        el('option', { value: name, text: name === running ? `${name} (running)` : name })));
      select.dataset.choices = choices;
    }
    select.value = db.version;
  };

  /** The form shows the desired state unless the user is editing it. */
  const fillForm = async (force = false) => {
    if (dirty && !force) return;
    $('#f-size', form).value = db.size;
    $('#f-replicas', form).value = db.replicas;
    $('#f-storage_gb', form).value = db.storage_gb;
    $('#f-deletion_policy', form).value = db.deletion_policy;
    $('#f-paused', form).checked = db.paused;
    $('#f-deletion_protection', form).checked = db.deletion_protection;
    await fillVersions();
    dirty = false;
    $('#edit-note').textContent = '';
  };

  const renderOperations = (page) => {
    $('#operations tbody').replaceChildren(
      ...page.items.map((op) =>
        el('tr', { 'data-id': op.id, 'data-type': op.type, 'data-status': op.status },
          el('th', { scope: 'row' }, el('code', { text: op.id })),
          el('td', { text: op.type }),
          el('td', { text: target(op.desired_state) }),
          el('td', {}, badge(op.status), op.error ? el('span', { class: 'current', text: op.error }) : null),
          el('td', { text: op.attempts }),
          el('td', {}, op.ops_request_name
            ? [el('code', { text: op.ops_request_name }), op.ops_request_phase ? ` (${op.ops_request_phase})` : '']
            : el('span', { class: 'muted', text: '—' })),
          el('td', {}, time(op.created_at)),
          el('td', {}, time(op.finished_at)))),
    );
    $('#operations-empty').hidden = page.items.length > 0;
  };

  const renderPlan = (plan) => {
    const summary = plan.in_sync
      ? 'In sync: desired and current agree and nothing is under way.'
      : plan.waiting
        ? `Waiting: ${plan.waiting}.`
        : plan.steps.length
          ? 'These operations bring the database to its desired state, in order:'
          : 'Nothing planned.';
    $('#plan-summary').textContent = summary;
    $('#plan-steps').replaceChildren(
      ...plan.steps.map((step) =>
        el('li', { 'data-type': step.type, 'data-running': step.running },
          el('strong', { text: step.type.replaceAll('_', ' ') }),
          ` → ${target(step.target)}`,
          step.running ? [' ', badge('running'), ' ', el('code', { text: step.operation_id })] : '',
          el('span', {
            class: 'why',
            text: `${step.ops_request_type ? `OpsRequest ${step.ops_request_type}` : 'changes the database resource'}; ${
              step.disruption.replaceAll('_', ' ')}: ${step.reason}`,
          }))),
    );
  };

  const renderEvents = (page) => {
    $('#events').replaceChildren(
      ...page.items.map((ev) =>
        el('li', { 'data-type': ev.type },
          el('span', { class: 'meta' }, time(ev.at), ` · ${ev.type.replaceAll('_', ' ')}`),
          el('span', { text: ev.message }))),
    );
    if (!page.items.length) $('#events').append(el('li', { class: 'muted', text: 'Nothing yet.' }));
    $('#more-events').hidden = !page.next_cursor || eventLimit >= 200;
  };

  const render = async () => {
    renderSummary();
    renderState();
    renderConditions();
    renderConnection();
    await fillForm();
  };

  /** Everything that changes, read at once; each part shown as it comes. */
  const load = async () => {
    const [got, ops, plan, events] = await Promise.allSettled([
      api('GET', path),
      api('GET', `/operations?database_id=${encodeURIComponent(id)}&limit=20`),
      api('GET', `${path}/plan`),
      api('GET', `${path}/events?limit=${eventLimit}`),
    ]);
    for (const r of [got, ops, plan, events]) {
      if (r.status === 'rejected' && r.reason instanceof SignedOut) throw r.reason;
    }
    if (got.status === 'rejected') {
      if (got.reason.status === 404) {
        refresher?.stop();
        $('#db').hidden = true;
        say($('#db-message'), `No database ${id} in your tenant.`, 'error');
        return;
      }
      throw got.reason;
    }
    db = got.value;
    await render();
    if (ops.status === 'fulfilled') renderOperations(ops.value);
    if (plan.status === 'fulfilled') renderPlan(plan.value);
    if (events.status === 'fulfilled') renderEvents(events.value);
    $('#db').hidden = false;
    stamp();
  };

  // The actions.
  form.addEventListener('input', () => {
    dirty = true;
    $('#edit-note').textContent = 'Unsaved edits: the form keeps them while the rest of the page refreshes.';
  });
  $('#discard').addEventListener('click', () => {
    clearErrors(form);
    fillForm(true).catch(() => {});
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const patch = {};
    for (const [field, read] of Object.entries(EDIT_FIELDS)) {
      const value = read(form);
      if (value !== db[field]) patch[field] = value;
    }
    if (!Object.keys(patch).length) {
      $('#edit-note').textContent = 'Nothing to save: the form shows the desired state.';
      return;
    }
    enable(form, false);
    saving = true;
    try {
      db = await api('PATCH', path, { body: patch });
      dirty = false;
      await render();
      say(actionMessage, `Saved ${Object.keys(patch).join(', ')}: the API recorded the desired state; the reconciler applies it.`, 'ok');
      refresher?.now();
    } catch (e) {
      if (e instanceof SignedOut) return;
      showProblem(form, e);
    } finally {
      saving = false;
      enable(form, !db?.deletion_requested);
    }
  });

  const act = async (button, method, suffix, body, done) => {
    button.disabled = true;
    try {
      db = await api(method, `${path}${suffix}`, body === undefined ? {} : { body });
      await render();
      say(actionMessage, done, 'ok');
    } catch (e) {
      fail(e);
    } finally {
      if (db) renderSummary();
    }
  };
  $('#pause').addEventListener('click', (event) => {
    const pause = !db.paused;
    act(event.currentTarget, 'PATCH', '', { paused: pause },
      pause ? 'Pause requested: KubeDB halts the database.' : 'Resume requested.').catch(() => {});
  });
  $('#restart').addEventListener('click', (event) => {
    act(event.currentTarget, 'POST', '/restart', undefined, 'Restart requested: a Restart OpsRequest follows.').catch(() => {});
  });
  $('#rotate').addEventListener('click', (event) => {
    act(event.currentTarget, 'POST', '/credentials/rotate', undefined,
      'Rotation requested: the old password works until the RotateAuth OpsRequest succeeds.').catch(() => {});
  });

  // Credentials: read on an explicit click only, never refreshed.
  const reveal = $('#reveal');
  const secret = $('#credentials');
  reveal.addEventListener('click', async () => {
    const message = $('#credentials-message');
    say(message, '');
    if (!secret.hidden) {
      secret.replaceChildren();
      secret.hidden = true;
      reveal.textContent = 'Reveal credentials';
      reveal.setAttribute('aria-expanded', 'false');
      return;
    }
    reveal.disabled = true;
    try {
      const creds = await api('GET', `${path}/credentials`);
      secret.replaceChildren(
        el('dt', { text: 'Username' }), el('dd', {}, el('code', { id: 'username', text: creds.username })),
        el('dt', { text: 'Password' }), el('dd', {}, el('code', { id: 'password', text: creds.password })),
      );
      secret.hidden = false;
      reveal.textContent = 'Hide credentials';
      reveal.setAttribute('aria-expanded', 'true');
    } catch (e) {
      if (e instanceof SignedOut) return;
      say(message, `Credentials not available (${e.status || 'network'}): ${e.message}`, 'error');
    } finally {
      reveal.disabled = false;
    }
  });

  $('#more-events').addEventListener('click', () => {
    eventLimit = Math.min(200, eventLimit + 25);
    load().catch(fail);
  });

  // Delete, after a confirmation in a modal dialog.
  const dialog = $('#delete-dialog');
  $('#delete').addEventListener('click', () => {
    for (const node of dialog.querySelectorAll('.db-name')) node.textContent = db.name;
    $('#delete-text').textContent = `The reconciler removes it from the cluster with the policy “${db.deletion_policy}”: ${
      { wipeout: 'everything goes, the credentials Secret too.', delete: 'pods and volumes go; the Secret stays.', halt: 'volumes and the Secret stay.' }[db.deletion_policy] || ''
    } The record and its history stay.`;
    dialog.showModal();
    $('#delete-cancel').focus();
  });
  $('#delete-cancel').addEventListener('click', () => dialog.close());
  $('#delete-confirm').addEventListener('click', async () => {
    $('#delete-confirm').disabled = true;
    try {
      await api('DELETE', path);
      dialog.close();
      flash(`Deletion of ${db.name} requested: the reconciler removes it.`, 'ok');
      location.assign('/console/');
    } catch (e) {
      dialog.close();
      if (e instanceof SignedOut) return;
      fail(e);
      for (const { field, message } of e.errors) {
        const slot = field && $(`#e-${CSS.escape(field)}`, form);
        if (slot) slot.textContent = message;
      }
      $('#delete').focus();
    } finally {
      $('#delete-confirm').disabled = false;
    }
  });

  try {
    await load();
  } catch (e) {
    if (e instanceof SignedOut) return;
    say($('#db-message'), `The database could not be read: ${e.message}`, 'error');
  }
  enable(form, !db?.deletion_requested);
  if (!$('#db').hidden) refresher = poll(load);
}

// ------------------------------------------------------------------ start

const PAGES = {
  'sign-in': signInPage,
  databases: databasesPage,
  'new-database': newDatabasePage,
  database: databasePage,
};

function start() {
  const page = document.body.dataset.page;
  const signedIn = Boolean(sessionStorage.getItem(KEY));
  $('#nav').hidden = !signedIn || page === 'sign-in';
  $(`[data-nav="${page}"]`)?.setAttribute('aria-current', 'page');
  $('#sign-out').addEventListener('click', () => {
    try {
      signOut('Signed out: the key is forgotten in this tab.', 'ok', false);
    } catch {
      // SignedOut: the navigation is under way.
    }
  });
  showFlash();
  PAGES[page]?.().catch((e) => {
    if (e instanceof SignedOut) return;
    const box = $('#flash');
    box.setAttribute('role', 'alert');
    box.replaceChildren(el('p', { class: 'message error', text: `Something went wrong: ${e.message}` }));
  });
}

start();
